"""Sessions: configuration, lifecycle, exit and signal flushing, on-demand capture, files, ranks.

(The package is called ``sessions`` because ``npuprofile.session`` is the public function.)
"""
