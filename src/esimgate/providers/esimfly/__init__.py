"""esimfly Business API as an upstream provider."""
