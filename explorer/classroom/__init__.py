"""A class that follows its teacher: rooms in a store every server process reads (``rooms``), and the app served by
several processes behind nginx with Redis for the rooms (``serve``)."""
