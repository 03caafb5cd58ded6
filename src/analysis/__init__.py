"""painanx: checks the claims of a popular article on Xanax for back pain against data.

The importable library behind the ``painanx`` command and the notebooks.
"""

__version__ = "0.1.0"
