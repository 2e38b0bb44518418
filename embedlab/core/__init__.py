"""What every other part of embedlab stands on: errors, registries, file writes, defaults.

Nothing here imports another embedlab package.
"""
