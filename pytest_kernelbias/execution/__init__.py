"""Turning a plan into trained weights: the `Executor` registry (serial, seed-batched, pool, Ray) and stores."""
