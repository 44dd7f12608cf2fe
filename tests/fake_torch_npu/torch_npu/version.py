__version__ = "2.14.0+fake"
