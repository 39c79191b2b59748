"""The policy artifact and the numpy-only runtime used during live sends.

Importing this package never imports torch, stable-baselines3, simpy or matplotlib.
"""

from nextbest.policies.artifact import FORMAT_VERSION, ArtifactError, LoadedPolicy, load, save_policy
from nextbest.policies.runtime import Runtime

__all__ = ["FORMAT_VERSION", "ArtifactError", "LoadedPolicy", "Runtime", "load", "save_policy"]
