"""Readers of evaluation data: WIT, XM3600, COCO captions, image classification, image stores."""
