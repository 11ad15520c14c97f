"""The quarterly report's own words in English and French: English source strings and their French."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from geo_ibm.errors import Problem, ValidationError

LANGUAGES: tuple[str, ...] = ("en", "fr")
"""Languages the report is written in."""

# English strings are the keys; a string missing here stays in English (map legends of
# geo_ibm.figures that are not listed, for instance).
FRENCH: dict[str, str] = {
    "Quarterly IBM analysis report": "Rapport trimestriel d'analyse IBM",
    "Luxembourg (national)": "Luxembourg (national)",
    "Luxembourg": "le Luxembourg",
    "police region %(region)s": "la région de police %(region)s",
    "Main entry country": "Principal pays d'entrée",
    "main transport mode": "principal mode de transport",
    "main kind of place": "principal type de lieu",
    "Strongest hot spot cell (highest Gi* z-score): canton %(canton)s (%(region)s), %(confidence)s confidence (section 3).":
        "Cellule la plus chaude (score z de Gi* le plus élevé) : canton %(canton)s (%(region)s), confiance %(confidence)s (section 3).",
    "Police region %(region)s": "Région de police %(region)s",
    "Quarter %(quarter)s (%(start)s – %(end)s)": "Trimestre %(quarter)s (%(start)s – %(end)s)",
    "Generated %(when)s from the geo_ibm event store": "Généré le %(when)s à partir de la base d'événements geo_ibm",
    "Contents": "Sommaire",
    "Page %(page)s": "Page %(page)s",
    "Summary": "Synthèse",
    "Key figures": "Chiffres clés",
    "Maps": "Cartes",
    "Charts": "Graphiques",
    "Hot spots": "Points chauds",
    "Statistics annex": "Annexe statistique",
    "Methods annex": "Annexe méthodologique",
    "No interceptions were recorded for %(area)s in %(quarter)s.": "Aucune interception n'a été enregistrée pour %(area)s au %(quarter)s.",
    "This short report therefore holds no maps, charts or tables of the quarter.":
        "Ce rapport court ne contient donc ni cartes, ni graphiques, ni tableaux du trimestre.",
    "For comparison: %(previous)s interceptions in %(pq)s and %(year)s in %(yq)s.":
        "Pour comparaison : %(previous)s interceptions au %(pq)s et %(year)s au %(yq)s.",
    "Only %(n)s interceptions were recorded for %(area)s in %(quarter)s; maps, hot spots and charts need at least %(min)s, so this report gives the key figures only.":
        "Seules %(n)s interceptions ont été enregistrées pour %(area)s au %(quarter)s ; les cartes, points chauds et graphiques en demandent au moins %(min)s, ce rapport ne donne donc que les chiffres clés.",
    "Fewer than %(min)s interceptions were recorded for %(area)s in %(quarter)s.":
        "Moins de %(min)s interceptions ont été enregistrées pour %(area)s au %(quarter)s.",
    "%(n)s interceptions of %(persons)s persons, among them %(smugglers)s suspected smugglers, were recorded for %(area)s in %(quarter)s.":
        "%(n)s interceptions de %(persons)s personnes, dont %(smugglers)s passeurs présumés, ont été enregistrées pour %(area)s au %(quarter)s.",
    "Against the previous quarter (%(pq)s): %(change)s interceptions%(mark)s; against %(yq)s: %(ychange)s%(ymark)s.":
        "Par rapport au trimestre précédent (%(pq)s) : %(change)s interceptions%(mark)s ; par rapport au %(yq)s : %(ychange)s%(ymark)s.",
    " (significant)": " (significatif)",
    " (not significant)": " (non significatif)",
    "Totals": "Totaux",
    "Interceptions": "Interceptions",
    "Persons": "Personnes",
    "Suspected smugglers": "Passeurs présumés",
    "By entry country": "Par pays d'entrée",
    "By transport mode": "Par mode de transport",
    "By location kind": "Par type de lieu",
    "By destination country (where recorded)": "Par pays de destination (si enregistré)",
    "By nationality (where recorded)": "Par nationalité (si enregistrée)",
    "Figure": "Indicateur",
    "Category": "Catégorie",
    "Change": "Évolution",
    "not recorded": "non enregistré",
    "unknown": "inconnu",
    "Significance: ** p < 0.01, * p < 0.05, exact conditional test of two Poisson counts (see the methods annex); – not tested.":
        "Significativité : ** p < 0,01, * p < 0,05, test conditionnel exact de deux comptages de Poisson (voir l'annexe méthodologique) ; – non testé.",
    "Overview of the interceptions": "Vue d'ensemble des interceptions",
    "Hot and cold spots (Getis–Ord Gi*, FDR)": "Points chauds et froids (Getis–Ord Gi*, FDR)",
    "Hot spot map not drawn: %(why)s": "Carte des points chauds non dessinée : %(why)s",
    "Top hot spot cells": "Cellules les plus chaudes",
    "No cell is a significant hot spot after the FDR correction.": "Aucune cellule n'est un point chaud significatif après la correction FDR.",
    "Rank": "Rang",
    "Cell": "Cellule",
    "Canton": "Canton",
    "Region": "Région",
    "Events": "Événements",
    "Confidence": "Confiance",
    "Monthly trend": "Tendance mensuelle",
    "Monthly interceptions": "Interceptions par mois",
    "interceptions per month": "interceptions par mois",
    "seasonal baseline": "référence saisonnière",
    "linear trend": "tendance linéaire",
    "report quarter": "trimestre du rapport",
    "Trend over %(months)s months: %(slope)s interceptions per month per year (p = %(p)s)%(seasonal)s.":
        "Tendance sur %(months)s mois : %(slope)s interceptions par mois et par an (p = %(p)s)%(seasonal)s.",
    ", calendar-month effects removed": ", effets des mois calendaires retirés",
    "Monthly trend not drawn: %(why)s": "Tendance mensuelle non dessinée : %(why)s",
    "Hour × weekday": "Heure × jour de la semaine",
    "Interceptions by local hour and weekday": "Interceptions par heure locale et jour de la semaine",
    "hour (local time)": "heure (heure locale)",
    "Distance to the border": "Distance à la frontière",
    "Interceptions by distance to the nearest internal border": "Interceptions par distance à la frontière intérieure la plus proche",
    "distance band": "tranche de distance",
    "Mon": "lun", "Tue": "mar", "Wed": "mer", "Thu": "jeu", "Fri": "ven", "Sat": "sam", "Sun": "dim",
    "Persons by nationality": "Personnes par nationalité",
    "Nationality": "Nationalité",
    "Interceptions with this nationality": "Interceptions avec cette nationalité",
    "Persons in those interceptions": "Personnes de ces interceptions",
    "Persons, single-nationality groups": "Personnes, groupes d'une seule nationalité",
    "No nationality was recorded in this quarter.": "Aucune nationalité n'a été enregistrée ce trimestre.",
    "Suspected facilitators (smugglers)": "Facilitateurs présumés (passeurs)",
    "Interceptions with a suspected smuggler": "Interceptions avec un passeur présumé",
    "Smugglers per interception": "Passeurs par interception",
    "Transport mode": "Mode de transport",
    "By border section and entry country": "Par section de frontière et pays d'entrée",
    "Nearest border section": "Section de frontière la plus proche",
    "Entry country": "Pays d'entrée",
    "Each table is also a CSV file next to this document: %(files)s.": "Chaque tableau existe aussi en fichier CSV à côté de ce document : %(files)s.",
    "Data period and completeness": "Période des données et complétude",
    "First and last interception of the quarter: %(first)s – %(last)s.": "Première et dernière interception du trimestre : %(first)s – %(last)s.",
    "Recorded: destination country for %(dest)s of the interceptions, nationalities for %(nat)s, a police region for %(reg)s.":
        "Enregistrés : pays de destination pour %(dest)s des interceptions, nationalités pour %(nat)s, région de police pour %(reg)s.",
    "Parameters": "Paramètres",
    "Gi* hot spots: square cells of %(cell)s m, distance band %(band)s m, significance by the Benjamini–Hochberg false discovery rate at 10/5/1 %%.":
        "Points chauds Gi* : cellules carrées de %(cell)s m, bande de distance de %(band)s m, significativité par le taux de fausses découvertes de Benjamini–Hochberg à 10/5/1 %%.",
    "Tests of change": "Tests d'évolution",
    "The change of a count of interceptions between two quarters is tested with the exact conditional test of two Poisson counts: given the total of both quarters, the report quarter's count is binomial with the share of days that quarter has; the two-sided p-value is the binomial test's. Persons and smugglers come in groups (their variance exceeds their mean), so their totals are not tested.":
        "L'évolution d'un nombre d'interceptions entre deux trimestres est testée par le test conditionnel exact de deux comptages de Poisson : sachant le total des deux trimestres, le nombre du trimestre du rapport suit une loi binomiale de paramètre la part de jours de ce trimestre ; la valeur p bilatérale est celle du test binomial. Personnes et passeurs viennent par groupes (leur variance dépasse leur moyenne), leurs totaux ne sont donc pas testés.",
    "Caveats": "Mises en garde",
    "Interceptions measure police activity as much as migration: a rise can follow more controls. Nationalities are recorded once per code per interception, so groups of mixed nationality count under each of their nationalities. Many tests are made in one report; a single * at 5 % is expected by chance now and then. Positions of the schematic road network and of crossing points are approximate (about 1 km).":
        "Les interceptions mesurent l'activité policière autant que la migration : une hausse peut suivre un surcroît de contrôles. Les nationalités sont enregistrées une fois par code et par interception, un groupe de nationalités mixtes compte donc sous chacune. Un rapport fait de nombreux tests ; un * isolé à 5 % est attendu de temps à autre par hasard. Les positions du réseau routier schématique et des points de passage sont approximatives (environ 1 km).",
    "Data sources and licences": "Sources des données et licences",
    "Map data: %(osm)s.": "Données cartographiques : %(osm)s.",
    "Border section": "Section de frontière",
    "Counts are protected for readers of aggregates: %(rule)s; no test of change is shown.":
        "Les comptages sont protégés pour les lecteurs d'agrégats : %(rule)s ; aucun test d'évolution n'est montré.",
    "counts from 1 to %(below)s suppressed, others rounded to multiples of %(rounding)s":
        "comptages de 1 à %(below)s masqués, les autres arrondis au multiple de %(rounding)s",
    "The map of single interceptions is for analysts only.": "La carte des interceptions individuelles est réservée aux analystes.",
    "months are finer than the time blocks of aggregates-only readers":
        "les mois sont plus fins que les périodes accessibles aux lecteurs d'agrégats",
    "Cell %(cell)s m, distance band %(band)s m, false discovery rate corrected":
        "Cellule de %(cell)s m, bande de distance de %(band)s m, correction du taux de fausses découvertes",
    "This edition is for readers of aggregates (geo_ibm.disclosure): %(rule)s; hot spots on one %(cell)s m lattice over the whole country, shown as classes; no single interception, z-score or test of change is shown.":
        "Cette édition s'adresse aux lecteurs d'agrégats (geo_ibm.disclosure) : %(rule)s ; points chauds sur une grille unique de %(cell)s m sur tout le pays, montrés par classes ; aucune interception individuelle, aucun score z ni test d'évolution n'est montré.",
    "Interception events: the geo_ibm event store (filters above)": "Événements d'interception : la base d'événements geo_ibm",
    # Map legends and footers drawn by geo_ibm.figures.
    "Interceptions near the internal Schengen borders": "Interceptions près des frontières intérieures Schengen",
    "Internal Schengen borders": "Frontières intérieures Schengen",
    "Border crossing points": "Points de passage frontaliers",
    "Police region boundaries": "Limites des régions de police",
    "Data period": "Période des données",
    "Projection": "Projection",
    "one event": "un événement",
    "Interceptions per hexagon": "Interceptions par hexagone",
    "%(n)s events in all": "%(n)s événements au total",
    "%(n)s events": "%(n)s événements",
    "Gi* hot and cold spots": "Points chauds et froids Gi*",
    "No significant cells": "Aucune cellule significative",
    "Hot spot, 99% confidence": "Point chaud, confiance 99 %",
    "Hot spot, 95% confidence": "Point chaud, confiance 95 %",
    "Hot spot, 90% confidence": "Point chaud, confiance 90 %",
    "Cold spot, 90% confidence": "Point froid, confiance 90 %",
    "Cold spot, 95% confidence": "Point froid, confiance 95 %",
    "Cold spot, 99% confidence": "Point froid, confiance 99 %",
    "Belgium": "Belgique", "France": "France", "Germany": "Allemagne",
    # Crossing point kinds in the map legend.
    "motorway": "autoroute", "national_road": "route nationale", "bridge": "pont", "rail": "voie ferrée",
    "airport": "aéroport",
    "Borders, outline, neighbours: OpenStreetMap-derived (data/boundaries)":
        "Frontières, contour, pays voisins : dérivés d'OpenStreetMap (data/boundaries)",
    "Cantons and police regions: data/boundaries/cantons.geojson (or the installed official file)":
        "Cantons et régions de police : data/boundaries/cantons.geojson (ou le fichier officiel installé)",
    "Crossing points: hand-curated table with a source per row (data/boundaries/crossing_points.csv)":
        "Points de passage : table établie à la main avec une source par ligne (data/boundaries/crossing_points.csv)",
    # Space-time repetition (geo_ibm.reportdoc.nearrepeat)
    "Space-time repetition (near repeats)": "Répétition spatio-temporelle (répétitions proches)",
    "1 day": "1 jour",
    "%(n)s days": "%(n)s jours",
    "%(from)s–%(to)s days": "%(from)s–%(to)s jours",
    "%(distance)s m and %(days)s days": "%(distance)s m et %(days)s jours",
    "Distance": "Distance",
    "Knox ratios of pairs of interceptions by distance and time apart":
        "Rapports de Knox des paires d'interceptions selon leur écart en distance et en temps",
    "Pairs of interceptions observed (expected by chance)":
        "Paires d'interceptions observées (attendues par le hasard)",
    "significant at the 1 % level": "significatif au seuil de 1 %",
    "significant at the 5 % level": "significatif au seuil de 5 %",
    "Knox ratio %(ratio)s, not significant": "rapport de Knox %(ratio)s, non significatif",
    "Knox ratio %(ratio)s, %(p)s": "rapport de Knox %(ratio)s, %(p)s",
    "Within %(distance)s m and %(days)s of an interception, another one is %(ratio)s times as likely as chance would give (%(p)s).":
        "À moins de %(distance)s m et %(days)s d'une interception, une autre est %(ratio)s fois plus probable que ne le voudrait le hasard (%(p)s).",
    "Within %(distance)s m and %(days)s of an interception, another one is no more likely than chance would give (%(detail)s): no near-repeat pattern at this range.":
        "À moins de %(distance)s m et %(days)s d'une interception, une autre n'est pas plus probable que ne le voudrait le hasard (%(detail)s) : pas de répétition proche à cette échelle.",
    "Fewer than %(min)s pairs of interceptions were within %(distance)s m and %(days)s of each other: too few to say whether near repeats are more likely than chance.":
        "Moins de %(min)s paires d'interceptions étaient à moins de %(distance)s m et %(days)s l'une de l'autre : trop peu pour dire si les répétitions proches sont plus probables que le hasard.",
    "No two interceptions were within %(distance)s m and %(days)s of each other, so no near repeat was seen at this range.":
        "Aucune paire d'interceptions n'était à moins de %(distance)s m et %(days)s l'une de l'autre : aucune répétition proche n'a été observée à cette échelle.",
    "Near repeats are also more frequent than chance at %(places)s.":
        "Les répétitions proches sont aussi plus fréquentes que le hasard à %(places)s.",
    "Near repeats are more frequent than chance at %(places)s.":
        "Les répétitions proches sont plus fréquentes que le hasard à %(places)s.",
    " and %(more)s more cells": " et %(more)s autres cellules",
    "Knox ratio: the pairs of interceptions observed in a distance and time band over the pairs expected when the dates are shuffled among the places (%(permutations)s permutations, as Ratcliffe's Near Repeat Calculator); ** p ≤ 0.01, * p ≤ 0.05 for ratios above 1; a band holds its lower edge, not its upper one. With %(cells)s cells, about one in twenty is marked by chance alone.":
        "Rapport de Knox : les paires d'interceptions observées dans une classe de distance et de temps rapportées aux paires attendues quand les dates sont permutées entre les lieux (%(permutations)s permutations, comme le Near Repeat Calculator de Ratcliffe) ; ** p ≤ 0,01, * p ≤ 0,05 pour les rapports supérieurs à 1 ; une classe contient sa borne inférieure, pas sa borne supérieure. Sur %(cells)s cellules, environ une sur vingt est marquée par le seul hasard.",
    "Cells of fewer than %(min)s pairs show no ratio (–).":
        "Les cellules de moins de %(min)s paires ne montrent pas de rapport (–).",
    "Only %(n)s interceptions: too few for a near-repeat analysis, which needs at least %(min)s.":
        "Seulement %(n)s interceptions : trop peu pour une analyse des répétitions proches, qui en demande au moins %(min)s.",
    "No two interceptions were less than %(distance)s m apart, so no near repeat can be measured.":
        "Aucune paire d'interceptions n'est à moins de %(distance)s m, aucune répétition proche ne peut donc être mesurée.",
    "The near-repeat table was not computed: %(why)s.":
        "Le tableau des répétitions proches n'a pas été calculé : %(why)s.",
    # corridors and flows (geo_ibm/reportdoc/routes.py)
    "Corridors and flows": "Corridors et flux",
    "other roads": "autres routes",
    "Road": "Route",
    "per km": "par km",
    "Change from the previous quarter": "Évolution par rapport au trimestre précédent",
    "Corridors by interceptions per km": "Corridors par interceptions au km",
    "Crossing": "Point de passage",
    "Country": "Pays",
    "Mean confidence": "Confiance moyenne",
    "Most likely entry crossings (by distance along the roads)":
        "Points d'entrée les plus probables (par distance le long des routes)",
    "Route analysis not made: %(why)s": "Analyse des itinéraires non effectuée : %(why)s",
    "the installed OpenStreetMap road network": "le réseau routier OpenStreetMap installé",
    "the schematic road corridors shipped with geo_ibm (accurate to about 1 km)":
        "les corridors routiers schématiques fournis avec geo_ibm (précis à environ 1 km)",
    "%(snapped)s of %(n)s interceptions lie within %(tolerance)s m of %(network)s and are analysed on it; "
    "each is attributed to the nearest crossing of its entry country along the roads, and flows follow the "
    "shortest paths from that crossing and on towards the destination country where it is known.":
        "%(snapped)s des %(n)s interceptions se trouvent à moins de %(tolerance)s m de %(network)s et y sont "
        "analysées ; chacune est attribuée au point de passage de son pays d'entrée le plus proche par la route, "
        "et les flux suivent les plus courts chemins depuis ce point puis vers le pays de destination quand il "
        "est connu.",
    "Busiest corridor: %(ref)s, %(per_km)s interceptions per km.":
        "Corridor le plus fréquenté : %(ref)s, %(per_km)s interceptions par km.",
    "Corridors: interceptions per km of road": "Corridors : interceptions par km de route",
    "Flows: entry crossing to interception and on to the exit":
        "Flux : du point d'entrée à l'interception, puis vers la sortie",
    "The corridor and flow maps are for analysts only.": "Les cartes des corridors et des flux sont réservées aux analystes.",
    "%(off)s interceptions lie farther than %(tolerance)s m from every road and are not in these figures.":
        "%(off)s interceptions se trouvent à plus de %(tolerance)s m de toute route et ne figurent pas dans ces chiffres.",
    # outlook and recommendations (geo_ibm/reportdoc/outlook.py)
    'Outlook and recommendations':
        'Perspectives et recommandations',
    'No earlier quarter to test the forecast on: the data start in this quarter.':
        'Aucun trimestre antérieur sur lequel tester la prévision : les données commencent ce trimestre.',
    'Quarter':
        'Trimestre',
    'Forecast from':
        'Prévu à partir de',
    'Cells':
        'Cellules',
    'Area':
        'Surface',
    'Hit rate':
        'Taux de réussite',
    'How the forecast did in past quarters':
        'Résultats de la prévision aux trimestres passés',
    "Next quarter's expected hot spots are this quarter's Gi* hot spots (95 %% confidence, FDR, %(cell)s m cells). Tried on the %(k)s previous quarters, this forecast caught on average %(hit)s of the next quarter's interceptions (from %(low)s to %(high)s) on %(area)s of the area: a PAI of %(pai)s, i.e. %(pai)s times what cells picked at random would catch.":
        'Les points chauds attendus au prochain trimestre sont les points chauds Gi* de ce trimestre (confiance 95 %%, FDR, cellules de %(cell)s m). Essayée sur les %(k)s trimestres précédents, cette prévision a couvert en moyenne %(hit)s des interceptions du trimestre suivant (de %(low)s à %(high)s) sur %(area)s de la surface : un PAI de %(pai)s, soit %(pai)s fois ce que couvriraient des cellules choisies au hasard.',
    'The forecast found no hot spot in the past quarters, so its accuracy is unknown.':
        "La prévision n'a trouvé aucun point chaud aux trimestres passés : sa précision est inconnue.",
    'Forecast map not drawn: %(why)s':
        'Carte de prévision non dessinée : %(why)s',
    'Expected hot spots next quarter':
        'Points chauds attendus au prochain trimestre',
    'No candidate control site lies in or near the area.':
        'Aucun site de contrôle candidat ne se trouve dans la zone ou à proximité.',
    'No recommendation: %(why)s':
        'Pas de recommandation : %(why)s',
    "Recommended for the next operation: %(k)s control sites that together are within %(radius)s km of %(share)s of this quarter's interceptions (recent ones weighing more), with the hours when most of them happened.":
        'Recommandés pour la prochaine opération : %(k)s sites de contrôle qui, ensemble, sont à moins de %(radius)s km de %(share)s des interceptions de ce trimestre (les plus récentes pesant davantage), avec les heures où la plupart ont eu lieu.',
    'Site':
        'Site',
    'Kind':
        'Type',
    'Cumulative share':
        'Part cumulée',
    'Busiest hours':
        'Heures les plus chargées',
    'Recommended control sites and hours':
        'Sites et heures de contrôle recommandés',
    'Only %(n)s interceptions in the quarter: too few for a forecast or recommendations (at least %(min)s).':
        'Seulement %(n)s interceptions dans le trimestre : trop peu pour une prévision ou des recommandations (au moins %(min)s).',
    'crossing':
        'point de passage',
    'service_area':
        'aire de service',
    'station':
        'gare',
    'bus_hub':
        "pôle d'autobus",
    'park_and_ride':
        'parking relais',
    # emerging hot spot map (geo_ibm/reportdoc/emergingmap.py, geo_ibm/figures/emergingmap.py)
    'Emerging hot spots': 'Points chauds émergents',
    'Emerging hot spot map not drawn: %(why)s': 'Carte des points chauds émergents non dessinée : %(why)s',
    '%(n)s cells: %(category)s': '%(n)s cellules : %(category)s',
    'Over %(first)s–%(last)s (space-time Gi*, Mann–Kendall trend): %(parts)s.': 'Sur %(first)s–%(last)s (Gi* spatio-temporel, tendance de Mann–Kendall) : %(parts)s.',
    'No hot spot pattern over %(first)s–%(last)s.': 'Aucune tendance de point chaud sur %(first)s–%(last)s.',
    'No emerging pattern detected': 'Aucune tendance émergente détectée',
    'new hot spot': 'point chaud nouveau',
    'New hot spot': 'Point chaud nouveau',
    'new cold spot': 'point froid nouveau',
    'New cold spot': 'Point froid nouveau',
    'consecutive hot spot': 'point chaud consécutif',
    'Consecutive hot spot': 'Point chaud consécutif',
    'consecutive cold spot': 'point froid consécutif',
    'Consecutive cold spot': 'Point froid consécutif',
    'intensifying hot spot': 'point chaud en intensification',
    'Intensifying hot spot': 'Point chaud en intensification',
    'intensifying cold spot': 'point froid en intensification',
    'Intensifying cold spot': 'Point froid en intensification',
    'persistent hot spot': 'point chaud persistant',
    'Persistent hot spot': 'Point chaud persistant',
    'persistent cold spot': 'point froid persistant',
    'Persistent cold spot': 'Point froid persistant',
    'diminishing hot spot': 'point chaud en diminution',
    'Diminishing hot spot': 'Point chaud en diminution',
    'diminishing cold spot': 'point froid en diminution',
    'Diminishing cold spot': 'Point froid en diminution',
    'sporadic hot spot': 'point chaud sporadique',
    'Sporadic hot spot': 'Point chaud sporadique',
    'sporadic cold spot': 'point froid sporadique',
    'Sporadic cold spot': 'Point froid sporadique',
    'oscillating hot spot': 'point chaud oscillant',
    'Oscillating hot spot': 'Point chaud oscillant',
    'oscillating cold spot': 'point froid oscillant',
    'Oscillating cold spot': 'Point froid oscillant',
    'historical hot spot': 'point chaud historique',
    'Historical hot spot': 'Point chaud historique',
    'historical cold spot': 'point froid historique',
    'Historical cold spot': 'Point froid historique',
    # named hotspots (geo_ibm/reportdoc/build.py)
    'Main hotspot (most interceptions): %(name)s, canton %(canton)s (%(region)s), %(confidence)s confidence (section 3).':
        "Principal point chaud (le plus d'interceptions) : %(name)s, canton %(canton)s (%(region)s), confiance %(confidence)s (section 3).",
    'Contiguous significant hot cells (Getis–Ord Gi*, FDR) form one hotspot, named by road, nearest landmark and commune; ranked by interceptions. Trend: against %(previous)s in the same cells; emerging category: the last %(quarters)s quarters.':
        "Les cellules chaudes significatives contiguës (Getis–Ord Gi*, FDR) forment un point chaud, nommé par la route, le repère le plus proche et la commune ; classement par nombre d'interceptions. Tendance : par rapport au %(previous)s dans les mêmes cellules ; catégorie émergente : les %(quarters)s derniers trimestres.",
    'Named hotspots':
        'Points chauds nommés',
    'Hotspot':
        'Point chaud',
    'Trend':
        'Tendance',
    'Emerging hot spot':
        'Point chaud émergent',
    'new':
        'nouveau',
    'up':
        'en hausse',
    'down':
        'en baisse',
    'stable':
        'stable',
    'consecutive':
        'consécutif',
    'intensifying':
        'en intensification',
    'persistent':
        'persistant',
    'diminishing':
        'en diminution',
    'sporadic':
        'sporadique',
    'oscillating':
        'oscillant',
    'historical':
        'historique',
    'also %(communes)s':
        'aussi %(communes)s',
    # legends of the corridor and flow print maps (geo_ibm/figures/routemap.py), as the web catalogue has them
    'Direction of travel': 'Sens de circulation',
    'Entry crossing (size: attributed events)': 'Point de passage d’entrée (taille : événements attribués)',
    'Events per km of road': 'Événements par km de route',
    'Flows': 'Flux',
    'From the entry crossing to the interception': 'Du point de passage d’entrée à l’interception',
    'From the interception to the exit crossing': 'De l’interception au point de passage de sortie',
    'Road network': 'Réseau routier',
    'Widest line': 'Trait le plus large',
    'events': 'événements',
    'no events': 'aucun événement',
    'persons': 'personnes',
    'schematic corridors (about 1 km accuracy)': 'corridors schématiques (précision d’environ 1 km)',
    # corridor and entry crossing charts (geo_ibm/reportdoc/charts.py)
    'Corridors by interceptions per km, this quarter and the previous one': 'Corridors par interceptions au km, ce trimestre et le précédent',
    'Interceptions attributed to each entry crossing': "Interceptions attribuées à chaque point d'entrée",
    'this quarter': 'ce trimestre',
    'previous period': 'période précédente',
    'interceptions per km of road': 'interceptions par km de route',
    'attributed interceptions': 'interceptions attribuées',
    # data sources of the methods annex (geo_ibm.tables.DATA_SOURCES)
    'Communes and place labels: ACT official administrative limits, CC0 (data/boundaries/communes.geojson)':
        "Communes et noms de lieux : limites administratives officielles de l'ACT, CC0 (data/boundaries/communes.geojson)",
    'Road network: the shipped schematic corridors (data/boundaries/road_corridors.geojson) or the installed OpenStreetMap extract (© OpenStreetMap contributors, ODbL)':
        "Réseau routier : les corridors schématiques fournis (data/boundaries/road_corridors.geojson) ou l'extrait OpenStreetMap installé (© les contributeurs d'OpenStreetMap, ODbL)",
    'Candidate control sites: hand-curated table with a source per row (data/boundaries/control_sites.csv)':
        'Sites de contrôle candidats : table établie à la main avec une source par ligne (data/boundaries/control_sites.csv)',
}

CATALOGS: dict[str, dict[str, str]] = {"en": {}, "fr": FRENCH}


def check_language(lang: str) -> str:
    """``lang`` if the report is written in it.

    Raises
    ------
    ValidationError
        ``lang`` is not one of :data:`LANGUAGES` (the problem names ``lang``).
    """
    if lang not in LANGUAGES:
        raise ValidationError(f"lang must be one of {', '.join(LANGUAGES)}, got {lang!r}",
                              [Problem("unknown language", column="lang", value=lang)])
    return lang


def translator(lang: str) -> Callable[[str], str]:
    """``t(text)``: ``text`` (an English source string) in ``lang``; unknown strings stay English."""
    catalog = CATALOGS[check_language(lang)]
    return lambda text: catalog.get(text, text)


def number(value: Any, lang: str, *, digits: int = 0) -> str:
    """``value`` (anything ``float`` takes) with thousands grouped as ``lang`` writes them (``12,345.6`` / ``12 345,6``)."""
    text = f"{float(value):,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", " ").replace(".", ",")
    return text


CODE_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "motorway": "motorway", "rest_area": "rest area", "border_crossing": "border crossing",
        "train_station": "train station", "bus_station": "bus station", "urban": "urban", "other": "other",
        "car": "car", "van": "van", "truck": "truck", "bus": "bus", "train": "train", "taxi": "taxi",
        "on_foot": "on foot", "unknown": "unknown", "total": "total",
    },
    "fr": {
        "motorway": "autoroute", "rest_area": "aire de repos", "border_crossing": "point de passage",
        "train_station": "gare", "bus_station": "gare routière", "urban": "zone urbaine", "other": "autre",
        "car": "voiture", "van": "camionnette", "truck": "camion", "bus": "autocar", "train": "train", "taxi": "taxi",
        "on_foot": "à pied", "unknown": "inconnu", "total": "total",
    },
}
"""Readable names of the event schema's codes (location kinds, transport modes); country codes stay as they are."""


def code_label(code: str, lang: str) -> str:
    """The readable name of a schema code in ``lang`` (``"on_foot"`` -> ``"on foot"`` / ``"à pied"``); others unchanged."""
    return CODE_LABELS[check_language(lang)].get(code, code)
