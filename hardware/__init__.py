"""Placement, sharding, multi-process runs, mixed precision, hardware facts and compression.

Imported as `zoo_hardware`; it never imports task code.
"""
