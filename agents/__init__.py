"""Learners (bandits, offline RL, online RL through stable-baselines3), each ending in an exported artifact.

* :mod:`nextbest.agents.linear`: LinUCB, LinTS, the direct method and IPS/DR policy learning from logs;
* :mod:`nextbest.agents.sb3_export`: a trained stable-baselines3 policy as an artifact.
"""
