"""Writers of image shards in the layouts img2dataset produces: webdataset tars and TFRecords.

Images are real JPEG/PNG bytes made with Pillow; the json sidecars carry img2dataset's fields.
"""

import io
import json
import tarfile

import tensorflow as tf
from PIL import Image


def image_bytes(color, size=(40, 30), fmt='JPEG') -> bytes:
  buf = io.BytesIO()
  Image.new('RGB', size, color).save(buf, fmt)
  return buf.getvalue()


def sample(key, url, caption, color=(120, 60, 30), *, image=None, size=(40, 30), **meta):
  """One img2dataset sample: key, image bytes (None: none), caption and its json sidecar."""
  if image is None and color is not None:
    image = image_bytes(color, size)
  record = {'url': url, 'caption': caption, 'key': key, 'status': 'success', 'width': size[0]}
  record.update(height=size[1], **meta)
  return {'key': key, 'image': image, 'txt': caption, 'json': record}


def write_webdataset_tar(path, samples, image_ext='jpg'):
  """`{key}.jpg`, `{key}.txt`, `{key}.json` per sample, consecutive, as img2dataset writes them."""
  with tarfile.open(path, 'w') as tar:
    for s in samples:
      members = [('txt', s['txt'].encode('utf-8')), ('json', json.dumps(s['json']).encode())]
      if s['image'] is not None:
        members.insert(0, (image_ext, s['image']))
      for ext, data in members:
        info = tarfile.TarInfo(f'{s["key"]}.{ext}')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return path


def write_img2dataset_tfrecord(path, samples):
  """One tf.train.Example per sample with bytes features key, jpg, txt, json."""

  def feature(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

  with tf.io.TFRecordWriter(path) as w:
    for s in samples:
      feats = {
        'key': feature(s['key'].encode()),
        'txt': feature(s['txt'].encode('utf-8')),
        'json': feature(json.dumps(s['json']).encode()),
      }
      if s['image'] is not None:
        feats['jpg'] = feature(s['image'])
      w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
  return path
