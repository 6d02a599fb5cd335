/*
 * buf.h -- forwards to the public tokenplace/buf.h. Only metrics.c still
 * includes it by this name (it is being split on another branch); once
 * that lands, its includes name "tokenplace/buf.h" and this file goes.
 */
#include "tokenplace/buf.h"
