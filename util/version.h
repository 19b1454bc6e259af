/* version.h -- qsr's version, recorded in result databases and deploy files. */
#ifndef QSR_VERSION_H
#define QSR_VERSION_H
#define QSR_VERSION "0.2.0"
#endif
