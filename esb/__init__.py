"""esb: an integration bus between warehouse management (WMS) and ERP systems."""

__version__ = "0.1.0"
