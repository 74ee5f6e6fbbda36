# The tiny query ablation's selection row: mixed queries whose conditional
# half is selected on the thing texts only (stuff left to the learnable
# queries).
_base_ = './mqformer_tiny_shapes-panoptic.py'
model = dict(proposal_texts='things')
