"""Analysis: reads marts, writes summaries, figures and reports. Graph algorithms live here too."""
