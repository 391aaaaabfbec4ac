"""The commissioner's what-if app (``sim app``, ``make app``): settings in a commissioner's terms (``settings``),
paired replicates on a warm executor with a cache (``runner``), the answer in words, figures and downloads
(``answer``), the Solara pages (``pages``) and Mesa's view of one family (``family``)."""
