"""Helpers shared by the tests: repository paths, tool subprocesses, tiny datasets and configs, golden runs."""
