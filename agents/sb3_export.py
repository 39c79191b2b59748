"""Export a stable-baselines3 policy (discrete actions, MLP) to a nextbest policy artifact.

The artifact computes the same scores as the SB3 network, with numpy only: for actor-critic models
(PPO, A2C, MaskablePPO) the logits ``policy.action_net(policy.mlp_extractor.policy_net(obs))`` (softmax
at temperature 1 gives SB3's action probabilities), for DQN the Q-values ``policy.q_net(obs)`` (greedy).
Only the pieces the artifact can express are accepted: flat Box observations, ``Discrete`` actions,
``Linear`` layers with ``Tanh`` or ``ReLU`` between them; a fixed observation normalisation is given as
``feature_mean`` / ``feature_scale`` (SB3's running ``VecNormalize`` is not supported).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.policies.artifact import save_policy

__all__ = ["export_sb3"]


def export_sb3(
    model: Any,
    path: str | os.PathLike[str],
    *,
    name: str,
    features: Sequence[str],
    actions: Sequence[str],
    deterministic: bool = False,
    **manifest: Any,
) -> Path:
    """Write ``model.policy``'s actor (or Q-network) as an MLP artifact.

    Args:
        model: a trained SB3 PPO/A2C/DQN (or sb3-contrib MaskablePPO) model with an MLP policy.
        features, actions: the observation's feature names and the action catalog, in order.
        deterministic: argmax of the scores (``temperature=None``) instead of sampling the softmax;
            always so for DQN.
        manifest: further :func:`~nextbest.policies.save_policy` fields (``temperature`` and ``epsilon``
            override ``deterministic``; ``feature_mean`` / ``feature_scale``, guardrails, ope, ...).
    """
    import torch

    policy = model.policy
    if hasattr(policy, "q_net"):
        layers = list(policy.q_net.q_net)
        deterministic = True
    else:
        layers = [m for m in policy.mlp_extractor.policy_net] + [policy.action_net]
    arrays: dict[str, np.ndarray] = {}
    activation = None
    i = 0
    for layer in layers:
        if isinstance(layer, torch.nn.Linear):
            arrays[f"w{i}"] = layer.weight.detach().cpu().numpy().T.astype(np.float64)
            arrays[f"b{i}"] = layer.bias.detach().cpu().numpy().astype(np.float64)
            i += 1
        elif isinstance(layer, (torch.nn.Tanh, torch.nn.ReLU)):
            kind = "tanh" if isinstance(layer, torch.nn.Tanh) else "relu"
            if activation not in (None, kind):
                raise NextbestError("the policy mixes activations; the artifact supports one")
            activation = kind
        else:
            raise NextbestError(f"cannot export layer {type(layer).__name__}")
    if arrays["w0"].shape[0] != len(features):
        raise NextbestError(f"the policy reads {arrays['w0'].shape[0]} features, {len(features)} names given")
    manifest.setdefault("temperature", None if deterministic else 1.0)
    return save_policy(
        path,
        kind="mlp",
        name=name,
        features=features,
        actions=actions,
        arrays=arrays,
        activation=activation or "tanh",
        **manifest,
    )
