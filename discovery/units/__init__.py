"""Window embeddings -> units: the clusterer and the occurrences in time.

    clustering.py   UnitClusterer: leave out silence, reduce (UMAP or PCA), cluster
                    (HDBSCAN or k-means), place new windows
    occurrences.py  merge_units: runs of one unit -> occurrences; unit_table
"""

from discovery.units.clustering import METHODS, MIN_WINDOWS, REDUCTIONS, UnitClusterer
from discovery.units.occurrences import (
    OCCURRENCE_KEYS,
    Occurrences,
    UNIT_TABLE_KEYS,
    merge_units,
    unit_table,
)
