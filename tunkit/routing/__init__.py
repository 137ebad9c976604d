"""Routing decisions: the longest-prefix-match table (``trie``) and weighted ECMP (``ecmp``); pure, no I/O.
"""
