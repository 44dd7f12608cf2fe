/* Optional accelerator for npuprofile's lean region path (timer-only sessions).
 *
 * It implements exactly what the pure-Python ``TimedRegion`` and
 * ``profile_region`` in _region.py do, in C: the same attributes (name,
 * recorder, parent, start, end, child_ns, state, handle), the same region
 * stack (the ``_CURRENT`` ContextVar, so nesting stays per thread and per
 * asyncio task), and the same statistics bookkeeping (``recorder.samples``).
 * Anything off the lean path (exit out of order, twice, from another context,
 * non-integer clock marks) calls back into the Python methods of ``Region``.
 *
 * _region.py hands over its objects once, through ``setup()``.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <string.h>
#include <time.h>

/* Objects handed over by setup(); owned references, alive for the process. */
static PyObject *g_current;        /* contextvars.ContextVar: the innermost open region */
static PyObject *g_active;         /* list: the active session's recorder, or empty */
static PyObject *g_region_type;    /* _region.Region: the full-featured Python region */
static PyObject *g_samples_type;   /* _stats.Samples */
static PyObject *g_exit_slow;      /* Region._exit_slow */
static PyObject *g_close;          /* Region._close */
static PyObject *g_close_children; /* Region._close_children */
static PyObject *g_repr;           /* Region.__repr__ */
static PyObject *g_region_error;   /* errors.RegionError */
static PyObject *g_idle_region;    /* _region.IDLE_REGION */
static PyObject *g_perf_counter_ns; /* time.perf_counter_ns */

/* Where the __slots__ of Recorder and Samples live, to read them without an attribute lookup. */
static PyTypeObject *g_recorder_type, *g_samples_cls;
static Py_ssize_t off_mark = -1, off_push = -1, off_deferred = -1, off_samples = -1, off_durations = -1, off_selfs = -1;

static PyObject *s_mark, *s_push, *s_deferred, *s_samples, *s_durations, *s_selfs, *s_child_ns, *s_append;

/* ``obj.<attr>`` (new reference), straight from its slot when ``obj`` is exactly of ``type``. */
static inline PyObject *
get_slot(PyObject *obj, PyTypeObject *type, Py_ssize_t offset, PyObject *attr)
{
    if (offset >= 0 && Py_IS_TYPE(obj, type)) {
        PyObject *value = *(PyObject **)((char *)obj + offset);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(obj, attr);
}

/* The offset of ``type``'s __slots__ member ``name``, or -1. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    Py_ssize_t offset = -1;
    if (descr == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY)) {
            offset = member->offset;
        }
    }
    Py_DECREF(descr);
    return offset;
}

typedef struct {
    PyObject_HEAD
    PyObject *name;
    PyObject *recorder;
    PyObject *parent;
    PyObject *handle;
    PyObject *start_obj; /* a mark that is not a 64-bit int (then start_raw is 0) */
    PyObject *end_obj;
    long long start;
    long long end;
    long long child_ns;
    int state; /* 0 = not entered, 1 = open, 2 = closed */
    char start_raw; /* 1: start holds the mark; 0: start_obj does (or unset) */
    char end_raw;
} RegionObject;

static PyTypeObject RegionType;

static int
ready(void)
{
    if (g_current == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "npuprofile._speedups.setup() was not called");
        return 0;
    }
    return 1;
}

/* A clock mark from the recorder: *raw and *is_raw = 1 for a 64-bit int, else *obj (new ref). */
static int
take_mark(PyObject *recorder, long long *raw, PyObject **obj, char *is_raw)
{
    PyObject *mark = get_slot(recorder, g_recorder_type, off_mark, s_mark);
    if (mark == NULL) {
        return -1;
    }
#ifdef __linux__
    /* time.perf_counter_ns() is clock_gettime(CLOCK_MONOTONIC) on Linux. */
    if (mark == g_perf_counter_ns) {
        struct timespec ts;
        Py_DECREF(mark);
        if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        *raw = (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
        *is_raw = 1;
        *obj = NULL;
        return 0;
    }
#endif
    PyObject *value = PyObject_CallNoArgs(mark);
    Py_DECREF(mark);
    if (value == NULL) {
        return -1;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            Py_DECREF(value);
            *raw = v;
            *is_raw = 1;
            *obj = NULL;
            return 0;
        }
        PyErr_Clear();
    }
    *is_raw = 0;
    *obj = value;
    return 0;
}

static PyObject *
new_region(PyTypeObject *type, PyObject *recorder, PyObject *name)
{
    RegionObject *self = PyObject_GC_New(RegionObject, type);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(recorder);
    self->recorder = recorder;
    Py_INCREF(name);
    self->name = name;
    self->parent = NULL;
    self->handle = NULL;
    self->start_obj = NULL;
    self->end_obj = NULL;
    self->start = 0;
    self->end = 0;
    self->child_ns = 0;
    self->state = 0;
    self->start_raw = 0;
    self->end_raw = 0;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
region_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"recorder", "name", NULL};
    PyObject *recorder, *name;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:TimedRegion", kwlist, &recorder, &name)) {
        return NULL;
    }
    return new_region(type, recorder, name);
}

static int
region_traverse(RegionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->name);
    Py_VISIT(self->recorder);
    Py_VISIT(self->parent);
    Py_VISIT(self->handle);
    Py_VISIT(self->start_obj);
    Py_VISIT(self->end_obj);
    return 0;
}

static int
region_clear(RegionObject *self)
{
    Py_CLEAR(self->name);
    Py_CLEAR(self->recorder);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->handle);
    Py_CLEAR(self->start_obj);
    Py_CLEAR(self->end_obj);
    return 0;
}

static void
region_dealloc(RegionObject *self)
{
    PyObject_GC_UnTrack(self);
    region_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
region_repr(RegionObject *self)
{
    if (!ready()) {
        return NULL;
    }
    return PyObject_CallOneArg(g_repr, (PyObject *)self);
}

static PyObject *
region_enter(RegionObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->state) {
        PyErr_Format(g_region_error,
                     "region %R was already entered; create a new profile_region() to time again", self->name);
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    self->state = 1;
    PyObject *parent;
    if (PyContextVar_Get(g_current, NULL, &parent) < 0) {
        return NULL;
    }
    Py_XSETREF(self->parent, parent); /* the variable has a default: never NULL */
    PyObject *token = PyContextVar_Set(g_current, (PyObject *)self);
    if (token == NULL) {
        return NULL;
    }
    Py_DECREF(token);
    PyObject *obj = NULL;
    if (take_mark(self->recorder, &self->start, &obj, &self->start_raw) < 0) {
        return NULL;
    }
    Py_XSETREF(self->start_obj, obj);
    Py_INCREF(self);
    return (PyObject *)self;
}

/* Append ``value`` to ``samples.<attr>`` (a list on the hot path). */
static int
append_to(PyObject *samples, PyObject *attr, long long value)
{
    PyObject *target = get_slot(samples, g_samples_cls, attr == s_durations ? off_durations : off_selfs, attr);
    if (target == NULL) {
        return -1;
    }
    PyObject *number = PyLong_FromLongLong(value);
    if (number == NULL) {
        Py_DECREF(target);
        return -1;
    }
    int rc;
    if (PyList_CheckExact(target)) {
        rc = PyList_Append(target, number);
    }
    else {
        PyObject *result = PyObject_CallMethodOneArg(target, s_append, number);
        rc = result == NULL ? -1 : 0;
        Py_XDECREF(result);
    }
    Py_DECREF(number);
    Py_DECREF(target);
    return rc;
}

/* ``parent.child_ns += duration`` for a C or a Python parent. */
static int
add_child_time(PyObject *parent, long long duration)
{
    if (Py_IS_TYPE(parent, &RegionType)) {
        ((RegionObject *)parent)->child_ns += duration;
        return 0;
    }
    PyObject *before = PyObject_GetAttr(parent, s_child_ns);
    if (before == NULL) {
        return -1;
    }
    PyObject *delta = PyLong_FromLongLong(duration);
    if (delta == NULL) {
        Py_DECREF(before);
        return -1;
    }
    PyObject *after = PyNumber_InPlaceAdd(before, delta);
    Py_DECREF(before);
    Py_DECREF(delta);
    if (after == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(parent, s_child_ns, after);
    Py_DECREF(after);
    return rc;
}

static int
record(PyObject *recorder, PyObject *name, long long duration, long long self_ns)
{
    PyObject *all = get_slot(recorder, g_recorder_type, off_samples, s_samples);
    if (all == NULL) {
        return -1;
    }
    PyObject *samples;
    if (PyDict_CheckExact(all)) {
        samples = PyDict_GetItemWithError(all, name); /* borrowed */
        if (samples != NULL) {
            Py_INCREF(samples);
        }
        else if (PyErr_Occurred()) {
            Py_DECREF(all);
            return -1;
        }
        else {
            PyObject *fresh = PyObject_CallNoArgs(g_samples_type);
            if (fresh == NULL) {
                Py_DECREF(all);
                return -1;
            }
            samples = PyDict_SetDefault(all, name, fresh); /* borrowed */
            Py_DECREF(fresh);
            Py_XINCREF(samples);
        }
    }
    else {
        samples = PyObject_GetItem(all, name);
        if (samples == NULL) {
            PyErr_Clear();
            PyObject *fresh = PyObject_CallNoArgs(g_samples_type);
            if (fresh != NULL) {
                samples = PyObject_CallMethod(all, "setdefault", "OO", name, fresh);
                Py_DECREF(fresh);
            }
        }
    }
    Py_DECREF(all);
    if (samples == NULL) {
        return -1;
    }
    int rc = append_to(samples, s_durations, duration);
    if (rc == 0) {
        rc = append_to(samples, s_selfs, self_ns);
    }
    Py_DECREF(samples);
    return rc;
}

static PyObject *
mark_object(long long raw, PyObject *obj, char is_raw)
{
    if (is_raw) {
        return PyLong_FromLongLong(raw);
    }
    Py_INCREF(obj);
    return obj;
}

static PyObject *
region_exit(RegionObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError, "__exit__ takes at most 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    long long end = 0;
    PyObject *end_obj = NULL;
    char end_raw = 0;
    if (take_mark(self->recorder, &end, &end_obj, &end_raw) < 0) {
        return NULL;
    }
    int lean = self->state == 1 && end_raw && self->start_raw;
    if (lean) {
        PyObject *current;
        if (PyContextVar_Get(g_current, NULL, &current) < 0) {
            return NULL;
        }
        lean = current == (PyObject *)self;
        Py_DECREF(current);
    }
    if (!lean) {
        PyObject *mark = end_raw ? PyLong_FromLongLong(end) : end_obj;
        if (mark == NULL) {
            return NULL;
        }
        PyObject *result = PyObject_CallFunctionObjArgs(g_exit_slow, (PyObject *)self, mark, NULL);
        Py_DECREF(mark);
        return result;
    }
    PyObject *parent = self->parent;
    PyObject *token = PyContextVar_Set(g_current, parent != NULL ? parent : Py_None);
    if (token == NULL) {
        return NULL;
    }
    Py_DECREF(token);
    self->state = 2;
    self->end = end;
    self->end_raw = 1;
    Py_CLEAR(self->end_obj);
    long long duration = end - self->start;
    if (parent != NULL && parent != Py_None && add_child_time(parent, duration) < 0) {
        return NULL;
    }
    if (record(self->recorder, self->name, duration, duration - self->child_ns) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
region_exit_slow(RegionObject *self, PyObject *end)
{
    if (!ready()) {
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(g_exit_slow, (PyObject *)self, end, NULL);
}

static PyObject *
region_close(RegionObject *self, PyObject *end)
{
    if (!ready()) {
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(g_close, (PyObject *)self, end, NULL);
}

static PyObject *
region_close_children(RegionObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "_close_children takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    return PyObject_CallFunctionObjArgs(g_close_children, (PyObject *)self, args[0], args[1], NULL);
}

/* start / end: a 64-bit int kept unboxed, or any other mark object. */
static PyObject *
get_mark(long long raw, PyObject *obj, char is_raw, const char *attr)
{
    if (!is_raw && obj == NULL) {
        PyErr_Format(PyExc_AttributeError, "'TimedRegion' object has no attribute '%s'", attr);
        return NULL;
    }
    return mark_object(raw, obj, is_raw);
}

static int
set_mark(PyObject *value, long long *raw, PyObject **obj, char *is_raw)
{
    if (value == NULL) {
        *is_raw = 0;
        Py_CLEAR(*obj);
        return 0;
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (!overflow && !(v == -1 && PyErr_Occurred())) {
            *raw = v;
            *is_raw = 1;
            Py_CLEAR(*obj);
            return 0;
        }
        PyErr_Clear();
    }
    Py_INCREF(value);
    Py_XSETREF(*obj, value);
    *is_raw = 0;
    return 0;
}

static PyObject *
region_get_start(RegionObject *self, void *Py_UNUSED(closure))
{
    return get_mark(self->start, self->start_obj, self->start_raw, "start");
}

static int
region_set_start(RegionObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    return set_mark(value, &self->start, &self->start_obj, &self->start_raw);
}

static PyObject *
region_get_end(RegionObject *self, void *Py_UNUSED(closure))
{
    return get_mark(self->end, self->end_obj, self->end_raw, "end");
}

static int
region_set_end(RegionObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    return set_mark(value, &self->end, &self->end_obj, &self->end_raw);
}

static PyObject *
region_get_sync(RegionObject *self, void *Py_UNUSED(closure))
{
    Py_RETURN_FALSE;
}

static PyGetSetDef region_getset[] = {
    {"start", (getter)region_get_start, (setter)region_set_start, "Clock mark at entry.", NULL},
    {"end", (getter)region_get_end, (setter)region_set_end, "Clock mark at exit.", NULL},
    {"sync", (getter)region_get_sync, NULL, "Always False: lean regions never synchronize.", NULL},
    {NULL},
};

static PyMemberDef region_members[] = {
    {"name", T_OBJECT_EX, offsetof(RegionObject, name), 0, "Region name."},
    {"recorder", T_OBJECT_EX, offsetof(RegionObject, recorder), 0, "The session's recorder."},
    {"parent", T_OBJECT, offsetof(RegionObject, parent), 0, "Enclosing region, or None."},
    {"handle", T_OBJECT, offsetof(RegionObject, handle), 0, "Range marker handle (always None here)."},
    {"child_ns", T_LONGLONG, offsetof(RegionObject, child_ns), 0, "Time spent in child regions (ns)."},
    {"state", T_INT, offsetof(RegionObject, state), 0, "0 = not entered, 1 = open, 2 = closed."},
    {NULL},
};

static PyMethodDef region_methods[] = {
    {"__enter__", (PyCFunction)region_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))region_exit, METH_FASTCALL, NULL},
    {"_exit_slow", (PyCFunction)region_exit_slow, METH_O, NULL},
    {"_close", (PyCFunction)region_close, METH_O, NULL},
    {"_close_children", (PyCFunction)(void (*)(void))region_close_children, METH_FASTCALL, NULL},
    {NULL},
};

static PyTypeObject RegionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "npuprofile._speedups.TimedRegion",
    .tp_doc = PyDoc_STR("A region that only takes host clock marks (the lean path, in C)."),
    .tp_basicsize = sizeof(RegionObject),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = region_new,
    .tp_dealloc = (destructor)region_dealloc,
    .tp_traverse = (traverseproc)region_traverse,
    .tp_clear = (inquiry)region_clear,
    .tp_repr = (reprfunc)region_repr,
    .tp_methods = region_methods,
    .tp_members = region_members,
    .tp_getset = region_getset,
};

/* -- module functions ------------------------------------------------------------------------ */

static PyObject *
sp_timed_region(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "timed_region() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    return new_region(&RegionType, args[0], args[1]);
}

static PyObject *
sp_profile_region(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *name = nargs >= 1 ? args[0] : NULL;
    PyObject *sync = Py_False;
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "profile_region() takes 1 positional argument but %zd were given", nargs);
        return NULL;
    }
    if (kwnames != NULL) {
        Py_ssize_t count = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            PyObject *value = args[nargs + i];
            if (PyUnicode_CompareWithASCIIString(key, "sync") == 0) {
                sync = value;
            }
            else if (PyUnicode_CompareWithASCIIString(key, "name") == 0 && name == NULL) {
                name = value;
            }
            else {
                PyErr_Format(PyExc_TypeError, "profile_region() got an unexpected keyword argument %R", key);
                return NULL;
            }
        }
    }
    if (name == NULL) {
        PyErr_SetString(PyExc_TypeError, "profile_region() missing 1 required argument: 'name'");
        return NULL;
    }
    if (!ready()) {
        return NULL;
    }
    if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) == 0) {
        PyErr_Format(g_region_error, "profile_region name must be a non-empty str, got %R", name);
        return NULL;
    }
    if (PyList_GET_SIZE(g_active) == 0) {
        Py_INCREF(g_idle_region);
        return g_idle_region;
    }
    PyObject *recorder = PyList_GET_ITEM(g_active, 0);
    Py_INCREF(recorder);
    int full = sync == Py_False ? 0 : PyObject_IsTrue(sync);
    if (full == 0) {
        PyObject *push = get_slot(recorder, g_recorder_type, off_push, s_push);
        if (push == NULL) {
            full = -1;
        }
        else {
            full = push != Py_None;
            Py_DECREF(push);
        }
    }
    if (full == 0) {
        PyObject *deferred = get_slot(recorder, g_recorder_type, off_deferred, s_deferred);
        if (deferred == NULL) {
            full = -1;
        }
        else {
            full = deferred == Py_False ? 0 : PyObject_IsTrue(deferred);
            Py_DECREF(deferred);
        }
    }
    PyObject *result;
    if (full < 0) {
        result = NULL;
    }
    else if (full) {
        result = PyObject_CallFunctionObjArgs(g_region_type, recorder, name, sync, NULL);
    }
    else {
        result = new_region(&RegionType, recorder, name);
    }
    Py_DECREF(recorder);
    return result;
}

#ifdef __linux__
static PyObject *
sp_monotonic_ns(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec);
}
#endif

#ifdef __SIZEOF_INT128__
static PyObject *
int128_to_pylong(__int128 value)
{
    if (value >= LLONG_MIN && value <= LLONG_MAX) {
        return PyLong_FromLongLong((long long)value);
    }
    /* value = high * 2**64 + low, with low unsigned */
    PyObject *high = PyLong_FromLongLong((long long)(value >> 64));
    PyObject *low = PyLong_FromUnsignedLongLong((unsigned long long)(value & 0xFFFFFFFFFFFFFFFFULL));
    PyObject *shift = PyLong_FromLong(64);
    PyObject *result = NULL;
    if (high != NULL && low != NULL && shift != NULL) {
        PyObject *shifted = PyNumber_Lshift(high, shift);
        if (shifted != NULL) {
            result = PyNumber_Add(shifted, low);
            Py_DECREF(shifted);
        }
    }
    Py_XDECREF(high);
    Py_XDECREF(low);
    Py_XDECREF(shift);
    return result;
}

/* moments(durations) -> (total, min, max, sum of squares as float) of an int64 buffer, or None. */
static PyObject *
sp_moments(PyObject *module, PyObject *values)
{
    Py_buffer view;
    if (PyObject_GetBuffer(values, &view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    const char *format = view.format != NULL ? view.format : "B";
    if (format[0] == '@' || format[0] == '=') {
        format++;
    }
    if (view.itemsize != 8 || (strcmp(format, "q") != 0 && strcmp(format, "l") != 0)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "moments() needs a buffer of 64-bit signed integers (array('q'))");
        return NULL;
    }
    const long long *data = (const long long *)view.buf;
    Py_ssize_t count = view.len / 8;
    if (count == 0) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    __int128 total = 0;
    unsigned __int128 squares = 0;
    const unsigned __int128 limit = ~(unsigned __int128)0;
    long long low = data[0], high = data[0];
    int overflow = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        long long v = data[i];
        total += v;
        if (v < low) {
            low = v;
        }
        if (v > high) {
            high = v;
        }
        unsigned long long magnitude = v < 0 ? (unsigned long long)0 - (unsigned long long)v : (unsigned long long)v;
        unsigned __int128 square = (unsigned __int128)magnitude * magnitude;
        if (square > limit - squares) {
            overflow = 1;
            break;
        }
        squares += square;
    }
    PyBuffer_Release(&view);
    if (overflow) {
        Py_RETURN_NONE; /* the caller falls back to exact Python arithmetic */
    }
    PyObject *total_obj = int128_to_pylong(total);
    PyObject *squares_obj = int128_to_pylong((__int128)(squares >> 1)); /* fits: halve, then double */
    if (total_obj == NULL || squares_obj == NULL) {
        Py_XDECREF(total_obj);
        Py_XDECREF(squares_obj);
        return NULL;
    }
    PyObject *two = PyLong_FromLong(2), *odd = PyLong_FromLong((long)(squares & 1));
    PyObject *doubled = two != NULL ? PyNumber_Multiply(squares_obj, two) : NULL;
    PyObject *exact = doubled != NULL && odd != NULL ? PyNumber_Add(doubled, odd) : NULL;
    Py_XDECREF(two);
    Py_XDECREF(odd);
    Py_XDECREF(doubled);
    Py_DECREF(squares_obj);
    if (exact == NULL) {
        Py_DECREF(total_obj);
        return NULL;
    }
    double sum_sq = PyLong_AsDouble(exact); /* correctly rounded */
    Py_DECREF(exact);
    if (sum_sq == -1.0 && PyErr_Occurred()) {
        Py_DECREF(total_obj);
        return NULL;
    }
    return Py_BuildValue("NLLd", total_obj, low, high, sum_sq);
}
#endif

static PyObject *
sp_setup(PyObject *module, PyObject *args)
{
    PyObject *current, *active, *recorder_type, *region_type, *samples_type, *exit_slow, *close, *close_children, *repr,
        *region_error, *idle_region;
    if (!PyArg_ParseTuple(args, "OO!O!OO!OOOOOO:setup", &current, &PyList_Type, &active, &PyType_Type, &recorder_type,
                          &region_type, &PyType_Type, &samples_type,
                          &exit_slow, &close, &close_children, &repr, &region_error, &idle_region)) {
        return NULL;
    }
    if (!PyContextVar_CheckExact(current)) {
        PyErr_SetString(PyExc_TypeError, "setup(): current must be a contextvars.ContextVar");
        return NULL;
    }
    PyObject *time_module = PyImport_ImportModule("time");
    if (time_module == NULL) {
        return NULL;
    }
    PyObject *perf_counter_ns = PyObject_GetAttrString(time_module, "perf_counter_ns");
    Py_DECREF(time_module);
    if (perf_counter_ns == NULL) {
        return NULL;
    }
#define KEEP(slot, value) do { Py_INCREF(value); Py_XSETREF(slot, value); } while (0)
    KEEP(g_active, active);
    Py_INCREF(recorder_type);
    Py_XSETREF(g_recorder_type, (PyTypeObject *)recorder_type);
    Py_INCREF(samples_type);
    Py_XSETREF(g_samples_cls, (PyTypeObject *)samples_type);
    off_mark = slot_offset(recorder_type, "mark");
    off_push = slot_offset(recorder_type, "push");
    off_deferred = slot_offset(recorder_type, "deferred");
    off_samples = slot_offset(recorder_type, "samples");
    off_durations = slot_offset(samples_type, "durations");
    off_selfs = slot_offset(samples_type, "selfs");
    KEEP(g_region_type, region_type);
    KEEP(g_samples_type, samples_type);
    KEEP(g_exit_slow, exit_slow);
    KEEP(g_close, close);
    KEEP(g_close_children, close_children);
    KEEP(g_repr, repr);
    KEEP(g_region_error, region_error);
    KEEP(g_idle_region, idle_region);
    Py_XSETREF(g_perf_counter_ns, perf_counter_ns);
    KEEP(g_current, current); /* last: ready() checks it */
#undef KEEP
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup", (PyCFunction)sp_setup, METH_VARARGS,
     PyDoc_STR("setup(current, active, recorder_type, region_type, samples_type, exit_slow, close, close_children, repr, "
               "region_error, idle_region)\n--\n\nHand over _region.py's objects (called once, at import).")},
    {"timed_region", (PyCFunction)(void (*)(void))sp_timed_region, METH_FASTCALL,
     PyDoc_STR("timed_region(recorder, name)\n--\n\nA new lean region (not entered).")},
    {"profile_region", (PyCFunction)(void (*)(void))sp_profile_region, METH_FASTCALL | METH_KEYWORDS,
     PyDoc_STR("profile_region(name, *, sync=False)\n--\n\n"
               "A context manager that times the block it wraps as region ``name``.\n\n"
               "With no active session it does nothing (and costs almost nothing). Inside a\n"
               "session it feeds the session's statistics and, when tracing, labels the\n"
               "block in the trace. ``sync=True`` waits for the device at entry and exit so\n"
               "host time covers the device work. Regions nest freely.")},
#ifdef __SIZEOF_INT128__
    {"moments", (PyCFunction)sp_moments, METH_O,
     PyDoc_STR("moments(durations)\n--\n\n(total, min, max, sum of squares) of an array('q') in one pass, "
               "or None when empty or too large for 128-bit sums.")},
#endif
#ifdef __linux__
    {"monotonic_ns", (PyCFunction)sp_monotonic_ns, METH_NOARGS,
     PyDoc_STR("monotonic_ns()\n--\n\nThe clock lean regions read when the recorder's mark is "
               "time.perf_counter_ns (only on Linux, where that is CLOCK_MONOTONIC).")},
#endif
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "npuprofile._speedups",
    .m_doc = PyDoc_STR("Optional C accelerator for npuprofile's lean region path."),
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&RegionType) < 0) {
        return NULL;
    }
#define INTERN(var, text) do { var = PyUnicode_InternFromString(text); if (var == NULL) return NULL; } while (0)
    INTERN(s_mark, "mark");
    INTERN(s_push, "push");
    INTERN(s_deferred, "deferred");
    INTERN(s_samples, "samples");
    INTERN(s_durations, "durations");
    INTERN(s_selfs, "selfs");
    INTERN(s_child_ns, "child_ns");
    INTERN(s_append, "append");
#undef INTERN
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&RegionType);
    if (PyModule_AddObject(module, "TimedRegion", (PyObject *)&RegionType) < 0) {
        Py_DECREF(&RegionType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
