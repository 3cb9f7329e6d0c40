"""Face-crop classification: the preprocessing contract and MesoNet scoring."""
