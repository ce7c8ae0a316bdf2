"""labdesk: the LAB method (taxonomy → synthetic data → phased tuning → chat) on one machine."""

__version__ = "0.1.0"
