"""The cap on a request's uploaded files, checked before a byte of them is read.

Django limits form fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but not files: any POST, before sign-in (the CSRF check
reads the form), would be spooled to disk whatever its size. This handler, first in FILE_UPLOAD_HANDLERS, refuses
a multipart body larger than UPLOAD_MAX_BYTES from its Content-Length with a 400; each form then applies its own,
smaller limit to the file it takes (a payroll spreadsheet 200 MB, a receipt to verify 5 MB)."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


class UploadSizeLimit(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > settings.UPLOAD_MAX_BYTES:
            raise RequestDataTooBig(f"upload of {content_length} bytes exceeds UPLOAD_MAX_BYTES")
        return None  # the next handlers read it

    def receive_data_chunk(self, raw_data, start):
        return raw_data  # passed on to the next handler

    def file_complete(self, file_size):
        return None
