"""The package's version, in a leaf module: the cache keys and the reports read it without importing the
package root (which would make every part import the one module that imports every part)."""

__version__ = "0.1.0"
