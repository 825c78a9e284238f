"""The train/eval harness shared by every task: loop, steps, checkpoints, logs."""
