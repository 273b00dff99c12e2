"""What a run writes: tables (units.csv, Raven, Audacity), plots (the only module that
imports matplotlib) and the self-contained HTML report."""
