"""The SIPAS service kit: what every service's edge and lifecycle share."""
