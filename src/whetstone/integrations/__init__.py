"""Whetstone's sharpeners and callbacks in other training frameworks.

- :mod:`whetstone.integrations.lightning`: ``SharpeningCallback``, a ``lightning.Callback``
  that drives any sharpener or callback from a ``lightning.Trainer`` (optional extra
  ``lightning``: ``pip install 'whetstone[lightning]'``).

Nothing here is imported by ``import whetstone``; each module imports its framework itself.
"""
