// placeholder so the target has a source; replaced by crc32c.c / codecs.c
