"""Year-end archiving (技术年结): database, layout files, the year's bill closing list."""
