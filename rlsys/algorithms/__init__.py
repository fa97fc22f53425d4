"""Pure tensor maths for RL: advantages, KL estimators, policy losses. No Ray, no workers."""
