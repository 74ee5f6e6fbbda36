# The demo's model trained on the shapes world's panoptic data only (the data
# mmdet's Mask2Former baseline sees), e.g. for an equal-data comparison:
#   python tools/demo.py --config configs/mqformer/mqformer_tiny_shapes-panoptic.py
_base_ = ['./mqformer_tiny_shapes-multitask.py']
train_dataloader = dict(
    dataset=dict(datasets=[{{_base_.shapes_panoptic_train}}]))
