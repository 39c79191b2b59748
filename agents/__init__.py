"""Learners (bandits, offline RL, online RL through stable-baselines3); see the open issues."""
