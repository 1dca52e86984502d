"""mapush-pbt's RLlib side: the batched MAPush pushing task, its rewards and metrics, and the RLlib env."""
