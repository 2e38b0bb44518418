"""The neighbouring-pixel residual (NPR, Tan et al., CVPR 2024): what up-sampling leaves behind.

A generator's up-sampling layers make each 2x2 cell of pixels alike in a way
camera images are not, whatever the generator. ``x - up_nearest(x[..., ::2, ::2])``
keeps exactly that relation and drops the image's content.

>>> import torch
>>> x = torch.arange(16.).view(1, 1, 4, 4)
>>> npr_residual(x)[0, 0]
tensor([[0., 1., 0., 1.],
        [4., 5., 4., 5.],
        [0., 1., 0., 1.],
        [4., 5., 4., 5.]])
"""

from __future__ import annotations


def npr_residual(x):
    """The neighbouring-pixel residual of a float ``(..., H, W)`` tensor with even ``H`` and ``W``."""
    return x - x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
