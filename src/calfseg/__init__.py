"""calfseg: CALF, the conditionally adaptive loss (arXiv 2504.04458), and the pipeline around it.

The flow, one layer per subpackage (imports point downwards only)::

    masks -> stats (areas, moments) -> rule (Selection) -> losses (branch losses, CALFLoss)
    files -> data (mask files) -> analyze (fingerprint + report) -> cli

The core (``calfseg.stats``, ``calfseg.rule``, ``calfseg.losses``) needs only torch and numpy.
"""

__version__ = "0.1.0"
