"""``python -m geo_ibm.cli``."""
from geo_ibm.cli import main

main()
