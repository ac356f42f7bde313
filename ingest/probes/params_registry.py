"""The parameter-dynamics probes (METHODS §B), registered in ``ingest.probes.PROBES``."""

from ingest.probes.covariance import CovarianceProbe
from ingest.probes.displacement import DisplacementProbe
from ingest.probes.perplexity import PerplexityProbe

PARAM_PROBES = (PerplexityProbe, CovarianceProbe, DisplacementProbe)
