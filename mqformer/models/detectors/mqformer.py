"""MQFormer: image -> segmentation encoder -> mixed-query decoder -> MQHead."""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet.models.detectors import DeformableDETR, DetectionTransformer
from mmdet.models.layers.transformer.utils import inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType
from ..layers import check_query_mode
from ..text_encoders import CLASS_TEXT


@MODELS.register_module()
class MQFormer(DetectionTransformer):
    """MQ-Former: a universal open-vocabulary segmentation model with a mixed
    set of learnable and conditional queries.

    The forward follows mmdet's DETR recipe, each step overridable:
    ``extract_feat`` (backbone) -> ``pre_transformer`` (text embeddings) ->
    ``forward_encoder`` (:class:`MQSegEncoder`) -> ``pre_decoder`` (N_c
    conditional queries from the top-k encoder proposals scored against the
    image's texts, N_l learnable queries, denoising queries) ->
    ``forward_decoder`` (:class:`MixedQueryDecoder`) -> :class:`MQHead`.

    Every sample carries ``texts`` (its positive and negative texts) in its
    metainfo, optionally ``text_type`` (``'class'`` names get prompt templates,
    ``'phrase'`` texts do not); ``gt_instances.labels`` index into ``texts``.

    Args:
        backbone (dict): any mmdet backbone returning multi-level features.
        encoder (dict): :class:`MQSegEncoder` config.
        decoder (dict): :class:`MixedQueryDecoder` config.
        bbox_head (dict): :class:`MQHead` config.
        text_encoder (dict): :class:`HFTextEncoder` config.
        query_mode (str): ``'mixed'`` (the method), ``'learnable'`` or
            ``'conditional'`` (the paper's ablations).
        num_learnable_queries (int): N_l. Defaults to 100.
        num_conditional_queries (int): N_c. Defaults to 300.
        dn_cfg (dict, optional): :class:`OpenVocabCdnQueryGenerator` config
            (``label_noise_scale``, ``box_noise_scale``, ``group_cfg``);
            ``None`` disables denoising.
        fusion_head (dict): :class:`MQFusionHead` config; its ``test_cfg``
            defaults to the model's ``test_cfg`` (task switches).
    """

    def __init__(self,
                 *args,
                 text_encoder: ConfigType,
                 query_mode: str = 'mixed',
                 num_learnable_queries: int = 100,
                 num_conditional_queries: int = 300,
                 dn_cfg: OptConfigType = None,
                 fusion_head: OptConfigType = dict(type='MQFusionHead'),
                 **kwargs) -> None:
        self.query_mode = check_query_mode(query_mode)
        self.num_learnable = (num_learnable_queries
                              if query_mode != 'conditional' else 0)
        self.num_conditional = (num_conditional_queries
                                if query_mode != 'learnable' else 0)
        self.text_encoder_cfg = text_encoder
        self.dn_cfg = dn_cfg
        self.fusion_head_cfg = dict(fusion_head or dict(type='MQFusionHead'))
        super().__init__(
            *args,
            num_queries=self.num_learnable + self.num_conditional,
            **kwargs)

    def _init_layers(self) -> None:
        self.encoder = MODELS.build(self.encoder)
        decoder = dict(self.decoder)
        if decoder.setdefault('query_mode', self.query_mode) != self.query_mode:
            raise ValueError(
                f'decoder.query_mode={decoder["query_mode"]!r} differs from the '
                f'model query_mode={self.query_mode!r}; set only model.query_mode')
        self.decoder = MODELS.build(decoder)
        self.text_encoder = MODELS.build(self.text_encoder_cfg)
        self.fusion_head_cfg.setdefault('test_cfg', self.test_cfg)
        self.fusion_head = MODELS.build(self.fusion_head_cfg)
        self.embed_dims = C = self.decoder.embed_dims
        self.text_proj = nn.Linear(self.text_encoder.embed_dims, C)
        if self.num_learnable:
            self.learnable_query = nn.Embedding(self.num_learnable, C)
            self.learnable_reference = nn.Embedding(self.num_learnable, 4)
        if self.num_conditional:
            # DeformableDETR's proposal generator reads these two
            self.memory_trans_fc = nn.Linear(C, C)
            self.memory_trans_norm = nn.LayerNorm(C)
        self.dn_query_generator = None
        if self.dn_cfg is not None:
            self.dn_query_generator = MODELS.build(
                dict(
                    type='OpenVocabCdnQueryGenerator',
                    embed_dims=C,
                    num_matching_queries=self.num_queries,
                    **self.dn_cfg))

    def init_weights(self) -> None:
        super().init_weights()
        if self.num_learnable:
            nn.init.normal_(self.learnable_query.weight)
            # learnable anchors spread over the image (DAB-DETR style)
            nn.init.uniform_(self.learnable_reference.weight, -2.0, 2.0)

    # DeformableDETR's two-stage proposals from the flattened encoder memory
    gen_encoder_output_proposals = DeformableDETR.gen_encoder_output_proposals

    # ---------------------------------------------------------------- texts
    @staticmethod
    def get_texts(batch_data_samples: SampleList
                  ) -> Tuple[List[List[str]], List[str]]:
        texts, types = [], []
        for s in batch_data_samples:
            if 'texts' not in s.metainfo:
                raise KeyError(
                    f'{s.metainfo.get("img_path", "sample")}: no "texts" in the '
                    'data sample; add a unified text-label transform (e.g. '
                    'ClassNamesToTexts) and "texts" to PackDetInputs meta_keys, '
                    'or give texts at inference')
            texts.append(list(s.texts))
            types.append(s.metainfo.get('text_type', CLASS_TEXT))
        return texts, types

    def encode_texts(self, batch_data_samples: SampleList
                     ) -> Tuple[Tensor, Tensor]:
        """Texts of every image -> (B, T, C) projected embeddings, (B, T) mask."""
        texts, types = self.get_texts(batch_data_samples)
        embeds, mask = self.text_encoder(texts, types)
        return self.text_proj(embeds), mask

    # ---------------------------------------------------------------- steps
    def pre_transformer(self, img_feats: Tuple[Tensor],
                        batch_data_samples: OptSampleList = None
                        ) -> Tuple[Dict, Dict]:
        """Backbone features go to the encoder; texts are embedded here."""
        text_embeds, text_mask = self.encode_texts(batch_data_samples)
        return dict(feats=img_feats), dict(
            text_embeds=text_embeds, text_mask=text_mask)

    def forward_encoder(self, feats: Tuple[Tensor]) -> Dict:
        """See :meth:`MQSegEncoder.forward` for the returned keys."""
        return self.encoder(list(feats))

    def pre_decoder(self, memory: Tensor, spatial_shapes: Tensor,
                    text_embeds: Tensor, text_mask: Tensor,
                    batch_data_samples: OptSampleList = None,
                    **kwargs) -> Tuple[Dict, Dict]:
        """Assemble ``[denoising | conditional | learnable]`` queries.

        Args:
            memory (Tensor): (B, S, C) flattened encoder output.
            spatial_shapes (Tensor): (num_levels, 2).
            text_embeds (Tensor): (B, T, C); text_mask (Tensor): (B, T).

        Returns:
            tuple[dict]: decoder inputs (``query`` (B, N, C),
            ``reference_points`` (B, N, 4) normalised cxcywh, ``dn_mask``,
            ``query_split``) and head inputs (``enc_outputs_class`` (B, N_c, T)
            and ``enc_outputs_coord`` (B, N_c, 4) in training, ``dn_meta``).
        """
        B = memory.size(0)
        queries, refs, head_inputs = [], [], {}
        if self.num_conditional:
            output_memory, output_proposals = self.gen_encoder_output_proposals(
                memory, None, spatial_shapes)
            enc_class = self.bbox_head.text_logits(output_memory, text_embeds)
            enc_coord_unact = self.bbox_head.reg_branches[
                self.decoder.num_layers](output_memory) + output_proposals
            # a proposal's score is its best real text
            scores = enc_class.masked_fill(~text_mask[:, None], -1e4).max(-1)[0]
            k = min(self.num_conditional, scores.size(1))
            topk = scores.topk(k, dim=1)[1]
            T = enc_class.size(-1)
            topk_class = torch.gather(enc_class, 1,
                                      topk[..., None].expand(-1, -1, T))
            topk_coord_unact = torch.gather(enc_coord_unact, 1,
                                            topk[..., None].expand(-1, -1, 4))
            topk_content = torch.gather(
                output_memory, 1, topk[..., None].expand(-1, -1,
                                                         self.embed_dims))
            queries.append(topk_content.detach())
            refs.append(topk_coord_unact.detach())
            if self.training:
                head_inputs.update(
                    enc_outputs_class=topk_class,
                    enc_outputs_coord=topk_coord_unact.sigmoid())
        if self.num_learnable:
            queries.append(self.learnable_query.weight[None].expand(B, -1, -1))
            refs.append(self.learnable_reference.weight[None].expand(B, -1, -1))
        num_c = queries[0].size(1) if self.num_conditional else 0
        query, reference_points = torch.cat(queries, 1), torch.cat(refs, 1)

        dn_mask, num_dn = None, 0
        if self.training and self.dn_query_generator is not None:
            dn_label_query, dn_bbox_query, dn_mask, dn_meta = \
                self.dn_query_generator(batch_data_samples, text_embeds,
                                        text_mask)
            num_dn = dn_meta['num_denoising_queries']
            # the generator's mask assumes num_queries matching queries
            n_match = query.size(1)
            if n_match != self.num_queries:
                dn_mask = dn_mask[:num_dn + n_match, :num_dn + n_match]
            query = torch.cat([dn_label_query, query], 1)
            reference_points = torch.cat([dn_bbox_query, reference_points], 1)
            head_inputs['dn_meta'] = dn_meta
        decoder_inputs = dict(
            query=query,
            reference_points=reference_points.sigmoid(),
            dn_mask=dn_mask,
            query_split=(num_dn, num_c, self.num_learnable))
        return decoder_inputs, head_inputs

    def forward_decoder(self, query: Tensor, memory: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor,
                        query_split: Tuple[int, int, int],
                        dn_mask: Optional[Tensor] = None, **kwargs) -> Dict:
        """Returns ``hidden_states`` (L + 1, B, N, C), the normed queries before
        the first layer and after each layer, and ``references``
        (L + 1, B, N, 4)."""
        inter_states, references = self.decoder(
            query=query,
            value=memory,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            valid_ratios=valid_ratios,
            reg_branches=self.bbox_head.reg_branches,
            query_split=query_split,
            self_attn_mask=dn_mask)
        hidden_states = torch.cat([self.decoder.norm(query)[None], inter_states])
        return dict(hidden_states=hidden_states, references=references)

    def forward_transformer(self, img_feats: Tuple[Tensor],
                            batch_data_samples: OptSampleList = None) -> Dict:
        """pre_transformer -> forward_encoder -> pre_decoder -> forward_decoder.

        Returns the head inputs: ``hidden_states``, ``references``,
        ``mask_features``, ``text_embeds``, ``text_mask`` and, in training,
        ``enc_outputs_class``, ``enc_outputs_coord``, ``dn_meta``.
        """
        encoder_inputs, text_dict = self.pre_transformer(
            img_feats, batch_data_samples)
        enc = self.forward_encoder(**encoder_inputs)
        decoder_inputs, head_inputs = self.pre_decoder(
            **enc, **text_dict, batch_data_samples=batch_data_samples)
        decoder_outputs = self.forward_decoder(
            memory=enc['memory'],
            spatial_shapes=enc['spatial_shapes'],
            level_start_index=enc['level_start_index'],
            valid_ratios=enc['valid_ratios'],
            **decoder_inputs)
        head_inputs.update(decoder_outputs)
        head_inputs.update(text_dict)
        head_inputs['mask_features'] = enc['mask_features']
        return head_inputs

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head.loss(
            **head_inputs, batch_data_samples=batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Task outputs per :class:`MQFusionHead`'s ``test_cfg`` switches and
        each sample's ``task``: ``pred_instances`` (labels index the sample's
        ``texts``), ``pred_sem_seg``, ``pred_panoptic_seg``, ``pred_fg``."""
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        cls, boxes, masks = self.bbox_head.predict(**head_inputs)
        num_texts = head_inputs['text_mask'].sum(1).tolist()
        for b, sample in enumerate(batch_data_samples):
            out = self.fusion_head.predict(cls[b, :, :num_texts[b]], boxes[b],
                                           masks[b], sample.metainfo, rescale)
            for key, value in out.items():
                setattr(sample, key, value)
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor]:
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head(**head_inputs)
