"""Server-rendered pages for people: the compliance officer's audit page, the clinician's review page."""
