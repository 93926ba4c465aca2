"""Paddler for Python: an LLM load balancer and serving platform built on llama.cpp."""
