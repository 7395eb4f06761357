"""Trains and measures the learned prompt detector (nodes/learned_gate.py) on I2P and COCO."""
