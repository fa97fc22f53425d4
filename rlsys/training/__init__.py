"""DeepSpeed training engines, the policy, critic and DPO steps, and state on disk."""
