"""Off-policy evaluation and reports; see the open issues."""
