"""
The TLS context of every connection to vCenter, made from the
configuration's TLS keys; the configuration's check loads the files the
same way, so a file OpenSSL cannot use is a configuration error, named by
its key, and never a pass-phrase prompt.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import ssl

from .errors import ConfigurationError

# A protocol for scratch contexts (PROTOCOL_TLS_CLIENT is not in 2.7).
_CLIENT_PROTOCOL = getattr(ssl, "PROTOCOL_TLS_CLIENT", ssl.PROTOCOL_SSLv23)


class _PassPhraseAsked(Exception):
    """OpenSSL asked for the pass phrase of an encrypted key."""


def _refuse_pass_phrase():
    # Without this callback OpenSSL would ask on the terminal, if there is
    # one, and wait: a service cannot answer, and the key must not need it.
    raise _PassPhraseAsked()


def _holds_certificate(path):
    """Whether the file ``path`` holds a PEM certificate OpenSSL can load."""
    try:
        ssl.SSLContext(_CLIENT_PROTOCOL).load_verify_locations(cafile=path)
    except (ssl.SSLError, IOError, OSError, TypeError, ValueError):
        return False
    return True


def verifying_context(ca_file):
    """
    ``ssl.create_default_context(cafile=ca_file)``, reporting a CA file
    OpenSSL cannot use as the configuration's error.

    :param ca_file: The ``ssl_ca_file`` path, or ``None`` for the system's CAs.
    :raises ConfigurationError: naming ``ssl_ca_file``.
    :rtype: ssl.SSLContext
    """
    try:
        return ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError:
        problem = "holds no PEM certificate (a DER file must be converted)"
    except (IOError, OSError) as error:
        problem = "cannot be read: {}".format(error.strerror)
    except (TypeError, ValueError):
        problem = "is not a file name this system can use"
    raise ConfigurationError("ssl_ca_file", "names {}, which {}".format(
        ca_file, problem))


def load_client_certificate(context, cert_file, key_file):
    """
    Load the client certificate and its key into ``context``, never asking
    for a pass phrase.

    :param ssl.SSLContext context:
    :param text cert_file: The ``ssl_cert_file`` path.
    :param key_file: The ``ssl_key_file`` path (``None``: in ``cert_file``).
    :raises ConfigurationError: naming ``ssl_cert_file`` or ``ssl_key_file``.
    """
    key, problem = None, None
    try:
        context.load_cert_chain(cert_file, key_file, password=_refuse_pass_phrase)
    except _PassPhraseAsked:
        key, problem = "ssl_key_file", (
            "is encrypted: nothing can give the agent its pass phrase; store "
            "the key unencrypted (openssl pkey -in KEY -out NEW_KEY), "
            "readable by root only")
    except ssl.SSLError as error:
        if getattr(error, "reason", None) == "KEY_VALUES_MISMATCH":
            key, problem = "ssl_key_file", ("is not the key of the certificate "
                                            "in ssl_cert_file")
        elif not _holds_certificate(cert_file):
            key, problem = "ssl_cert_file", "holds no PEM certificate"
        else:
            key, problem = "ssl_key_file", "holds no PEM private key"
    except (IOError, OSError) as error:
        key, problem = "ssl_key_file", "cannot be read: {}".format(error.strerror)
        if not _holds_certificate(cert_file):
            key = "ssl_cert_file"
    except (TypeError, ValueError):
        key, problem = "ssl_cert_file", "is not a file name this system can use"
    if problem is not None:
        raise ConfigurationError(key, "names {}, which {}".format(
            cert_file if key == "ssl_cert_file" else key_file, problem))


def ssl_context(config):
    """
    The TLS context for ``config``: verify against the system's CAs (or
    ``ssl_ca_file``) unless verification is turned off or a fingerprint is
    pinned (the pin then replaces CA verification, as for self-signed vCenter
    certificates).

    The files are loaded as the configuration's check loaded them, so one
    changed since reports the same ``ConfigurationError``, and an encrypted
    key never makes OpenSSL ask for its pass phrase on a terminal.

    :param VsphereConfiguration config:
    :raises ConfigurationError: a TLS file cannot be used.
    :rtype: ssl.SSLContext
    """
    if config.ssl_verify_cert and config.ssl_thumbprint is None:
        context = verifying_context(config.ssl_ca_file)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.ssl_cert_file is not None:
        load_client_certificate(context, config.ssl_cert_file,
                                config.ssl_key_file)
    return context
