"""Placement, sharding and compression. Pure functions of trees and devices.

Imported as `zoo_hardware`; it never imports task code.
"""
