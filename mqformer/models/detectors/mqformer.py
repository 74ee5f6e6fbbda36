"""MQFormer: image -> segmentation encoder -> mixed-query decoder -> MQHead."""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub
from torch import Tensor, nn

from mmdet.models.detectors import DetectionTransformer
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList, SampleList
from mmdet.utils import ConfigType, OptConfigType
from ...engine.non_finite_guard import NONFINITE_TERMS
from ..layers import (QuerySplit, check_query_mode, encoder_output_proposals,
                      use_cpu_deformable_attention, use_sdpa_attention)
from ..text_encoders import CLASS_TEXT
from .conditional_query_selection import ConditionalQuerySelection


@MODELS.register_module()
class MQFormer(ConditionalQuerySelection, DetectionTransformer):
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
        enc_mask_loss (bool): MaskDINO's unified query selection: the top-k
            encoder proposals also predict masks, supervised like the
            decoder's. Defaults to True.
        mask_box_init (bool): MaskDINO's mask-enhanced anchors: conditional
            queries start from the boxes of their proposals' masks instead of
            the regressed proposal boxes. Defaults to True.
        dqs_cfg (dict, optional): distinct query selection (DDQ-DETR, mmdet's
            ``DDQDETR.dqs_cfg``): no two conditional queries start from
            proposals that overlap more than ``iou_threshold``; suppressed
            proposals fill in when fewer than N_c survive. ``type``:
            ``'mask_nms'``, Fast NMS (YOLACT) over the masks the proposals
            predict (unified query selection's mask head, on mask features
            resized to at most ``mask_size`` a side, default 32), or ``'nms'``, mmcv's NMS
            over the regressed proposal boxes (DDQ; the remaining keys go to
            ``batched_nms``). Both run on the best ``nms_pre_ratio * N_c``
            proposals (default 4; NMS over every token of a 1024 px image
            costs seconds on a CPU). ``None`` (default): plain top-k (DINO).
        proposal_texts (str): the texts a proposal's selection score is its
            best of: ``'all'`` (default, MaskDINO) or ``'things'``, the
            sample's thing texts only (``text_is_thing``; an image without
            one falls back to all), so stuff is left to the learnable
            queries and every conditional query starts on a thing.
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
                 enc_mask_loss: bool = True,
                 mask_box_init: bool = True,
                 dqs_cfg: OptConfigType = None,
                 proposal_texts: str = 'all',
                 fusion_head: OptConfigType = dict(type='MQFusionHead'),
                 **kwargs) -> None:
        self.query_mode = check_query_mode(query_mode)
        self.num_learnable = (num_learnable_queries
                              if query_mode != 'conditional' else 0)
        self.num_conditional = (num_conditional_queries
                                if query_mode != 'learnable' else 0)
        self.text_encoder_cfg = text_encoder
        self.dn_cfg = dn_cfg
        self.enc_mask_loss = enc_mask_loss
        self.mask_box_init = mask_box_init
        self.dqs_cfg = dict(dqs_cfg) if dqs_cfg else None
        if proposal_texts not in ('all', 'things'):
            raise ValueError("proposal_texts must be 'all' or 'things', got "
                             f'{proposal_texts!r}')
        self.proposal_texts = proposal_texts
        self.fusion_head_cfg = dict(fusion_head or dict(type='MQFusionHead'))
        if self.query_mode == 'learnable' and kwargs.get('bbox_head'):
            # no encoder proposals: no proposal box branch (unused
            # parameters stop DDP)
            kwargs['bbox_head'] = dict(kwargs['bbox_head'],
                                       proposal_branch=False)
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
        # same outputs, ~1/3 less deformable-attention time off CUDA
        use_cpu_deformable_attention(self.encoder)
        use_cpu_deformable_attention(self.decoder)
        # same outputs; no (heads, Q, K) softmax kept for the backward
        use_sdpa_attention(self.decoder)
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

    def gen_encoder_output_proposals(self, memory: Tensor,
                                     memory_mask: Optional[Tensor],
                                     spatial_shapes: Tensor
                                     ) -> Tuple[Tensor, Tensor]:
        """DeformableDETR's two-stage proposals from the flattened encoder
        memory (B, S, C): its projected memory (B, S, C) and inverse-sigmoid
        proposals (B, S, 4); see :func:`encoder_output_proposals` (the same
        values, traceable at any image size; the level order)."""
        memory, proposals = encoder_output_proposals(memory, memory_mask,
                                                     spatial_shapes)
        return self.memory_trans_norm(self.memory_trans_fc(memory)), proposals

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
        """Backbone features and the input padding mask go to the encoder;
        texts are embedded here.

        The padding mask (B, H, W) is True where the padded batch holds no
        image (``batch_input_shape`` vs each ``img_shape``), as in mmdet's
        ``DeformableDETR``; ``None`` when no image of the batch is padded.
        """
        text_embeds, text_mask = self.encode_texts(batch_data_samples)
        return dict(feats=img_feats,
                    img_masks=self.padding_mask(img_feats[0],
                                                batch_data_samples)), dict(
            text_embeds=text_embeds, text_mask=text_mask)

    @staticmethod
    def image_shapes(batch_data_samples: SampleList,
                     device: Optional[torch.device] = None) -> Tensor:
        """(B, 2) long: each image's valid (h, w) inside the padded batch."""
        return torch.tensor([list(s.img_shape[:2]) for s in batch_data_samples],
                            dtype=torch.long, device=device)

    @classmethod
    def padding_mask(cls, feat: Tensor, batch_data_samples: SampleList
                     ) -> Optional[Tensor]:
        """(B, H, W) bool, True on padding; ``None`` if nothing is padded."""
        H, W = batch_data_samples[0].batch_input_shape
        shapes = [tuple(s.img_shape[:2]) for s in batch_data_samples]
        if all(s == (H, W) for s in shapes):
            return None
        return cls.padding_mask_of(
            cls.image_shapes(batch_data_samples, feat.device), (H, W))

    @staticmethod
    def padding_mask_of(img_shapes: Tensor, batch_input_shape: Tuple[int, int]
                        ) -> Tensor:
        """(B, 2) valid (h, w) -> (B, H, W) bool padding mask, True on
        padding. Tensor ops only, so an exported graph keeps the image size
        as an input."""
        H, W = batch_input_shape
        ys = torch.arange(H, device=img_shapes.device)
        xs = torch.arange(W, device=img_shapes.device)
        return (ys[None, :, None] >= img_shapes[:, 0, None, None]) | \
            (xs[None, None, :] >= img_shapes[:, 1, None, None])

    def forward_encoder(self, feats: Tuple[Tensor],
                        img_masks: Optional[Tensor] = None) -> Dict:
        """See :meth:`MQSegEncoder.forward` for the returned keys."""
        return self.encoder(list(feats), img_masks)

    def pre_decoder(self, memory: Tensor, spatial_shapes: Tensor,
                    text_embeds: Tensor, text_mask: Tensor,
                    mask_features: Tensor,
                    memory_mask: Optional[Tensor] = None,
                    batch_data_samples: OptSampleList = None,
                    img_shapes: Optional[Tensor] = None,
                    batch_input_shape: Optional[Tuple] = None,
                    **kwargs) -> Tuple[Dict, Dict]:
        """Assemble ``[denoising | conditional | learnable]`` queries.

        Args:
            memory (Tensor): (B, S, C) flattened encoder output.
            spatial_shapes (Tensor): (num_levels, 2).
            text_embeds (Tensor): (B, T, C); text_mask (Tensor): (B, T).
            mask_features (Tensor): (B, C, H/4, W/4).
            memory_mask (Tensor, optional): (B, S), True on padding.
            img_shapes (Tensor, optional): (B, 2) valid (h, w) of each
                image; read from ``batch_data_samples`` when ``None``.
            batch_input_shape (tuple, optional): (H, W) of the padded input,
                likewise (an exported graph passes its symbolic size).

        Returns:
            tuple[dict]: decoder inputs (``query`` (B, N, C),
            ``reference_points`` (B, N, 4) cxcywh normalised to each image's
            valid area, ``dn_mask``, ``query_split``) and head inputs
            (``query_split``; in training ``enc_outputs_class`` (B, N_c, T),
            ``enc_outputs_coord`` (B, N_c, 4), ``enc_outputs_mask_embed``
            (B, N_c, C) with ``enc_mask_loss``, ``dn_meta``).
        """
        B = memory.size(0)
        queries, refs, head_inputs = [], [], {}
        if self.num_conditional:
            content, refs_unact, enc_outputs = self.select_queries(
                memory, memory_mask, spatial_shapes, text_embeds, text_mask,
                mask_features, batch_data_samples, img_shapes,
                batch_input_shape)
            queries.append(content)
            refs.append(refs_unact)
            if self.training:
                head_inputs.update(enc_outputs)
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
        query_split = QuerySplit(num_dn, num_c, self.num_learnable)
        head_inputs['query_split'] = query_split
        decoder_inputs = dict(
            query=query,
            reference_points=reference_points.sigmoid(),
            dn_mask=dn_mask,
            query_split=query_split)
        return decoder_inputs, head_inputs

    def forward_decoder(self, query: Tensor, memory: Tensor,
                        reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor,
                        query_split: QuerySplit,
                        dn_mask: Optional[Tensor] = None,
                        memory_mask: Optional[Tensor] = None,
                        mask_features: Optional[Tensor] = None,
                        **kwargs) -> Dict:
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
            self_attn_mask=dn_mask,
            key_padding_mask=memory_mask,
            mask_features=mask_features,
            mask_branch=self.bbox_head.mask_embed)
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
        # the encoder's geometry (memory, shapes, ratios, mask) + the queries
        decoder_outputs = self.forward_decoder(**enc, **decoder_inputs)
        head_inputs.update(decoder_outputs)
        head_inputs.update(text_dict)
        head_inputs['mask_features'] = enc['mask_features']
        return head_inputs

    def parse_losses(self, losses: Dict[str, Tensor]):
        """mmengine's, plus the names of non-finite terms in the message
        hub (``nonfinite_loss_terms``) for
        :class:`NonFiniteGuardOptimWrapper`'s report."""
        loss, log_vars = super().parse_losses(losses)
        bad = [k for k, v in log_vars.items()
               if k != 'loss' and not torch.isfinite(v).all()]
        MessageHub.get_current_instance().update_info(NONFINITE_TERMS, bad)
        return loss, log_vars

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
        split = head_inputs['query_split']
        num_texts = head_inputs['text_mask'].sum(1).tolist()
        for b, sample in enumerate(batch_data_samples):
            out = self.fusion_head.predict(cls[b, :, :num_texts[b]], boxes[b],
                                           masks[b], sample.metainfo, rescale)
            inst = out.get('pred_instances')
            if inst is not None and 'query_index' in inst:
                inst.query_learnable = inst.query_index >= \
                    split.num_conditional
            for key, value in out.items():
                setattr(sample, key, value)
            # matching queries are laid out [conditional | learnable]
            sample.set_metainfo(
                dict(num_conditional_queries=split.num_conditional))
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: OptSampleList = None) -> Tuple[Tensor]:
        head_inputs = self.forward_transformer(
            self.extract_feat(batch_inputs), batch_data_samples)
        return self.bbox_head(**head_inputs)
