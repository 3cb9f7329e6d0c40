"""Face crops for MesoNet: the authors' nose-centred, eye-levelled square."""
