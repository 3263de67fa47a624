"""esimgate: an open-source eSIM reseller gateway."""

__version__ = "0.1.0"
