"""Learners (bandits, offline RL, online RL through stable-baselines3), each ending in an exported artifact.

``nextbest.agents.sb3_export.export_sb3`` writes a trained stable-baselines3 policy as an artifact.
"""
