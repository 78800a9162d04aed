"""党建知识问答: an offline retrieval-augmented assistant over Chinese Party-building articles."""

__version__ = "0.1.0"
