"""mesolive: real-time deepfake detection with MesoNet (Afchar et al., WIFS 2018)."""

__version__ = "0.1.0"
