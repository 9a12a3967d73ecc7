"""The local stack: starts the product's services as plain processes on loopback."""
