/*
 * A PKCS#11 module that stands in front of a real one and fails signatures on demand: the
 * token's module failing mid-step, for tests/softhsm/faults.rs.
 *
 * FAULTY_PKCS11_REAL names the real module (SoftHSM2). While the file named by
 * FAULTY_PKCS11_FAIL_SIGN exists, C_Sign and C_SignFinal answer CKR_DEVICE_ERROR (after letting
 * the real module finish the operation, so the session is left as a failed call leaves it) and
 * C_SignUpdate answers CKR_DEVICE_ERROR; otherwise every call goes to the real module. A file
 * holding a number N lets the process's first N signatures through before failing. Each
 * failure appends a line to FAULTY_PKCS11_LOG, when set, so a test can tell that it fired.
 *
 * With FAULTY_PKCS11_COUNTS set, it also counts the calls a process makes (those named in
 * COUNTED below, and C_Sign) and appends them to that file at C_Finalize and at exit, one
 * `NAME COUNT` a line, then counts from zero again: the sum over the file's lines is the
 * process's total, even if the module is unloaded and loaded again
 * (tests/softhsm/call_counts.rs).
 *
 * Built by the test with `cc -shared -fPIC`; the header is p11-kit's (libp11-kit-dev).
 */

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST real_list_copy;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST faulty;

/* Signatures made so far (a trigger file holding N lets the first N through). */
static unsigned long made;

/* True while the trigger file is there (and has let through the signatures it allows). */
static int failing(const char *function)
{
    const char *trigger = getenv("FAULTY_PKCS11_FAIL_SIGN");
    if (trigger == NULL)
        return 0;
    FILE *t = fopen(trigger, "r");
    if (t == NULL)
        return 0;
    unsigned long let_through = 0;
    int counted = fscanf(t, "%lu", &let_through) == 1;
    fclose(t);
    if (counted && made < let_through)
        return 0;
    const char *log = getenv("FAULTY_PKCS11_LOG");
    if (log != NULL) {
        FILE *f = fopen(log, "a");
        if (f != NULL) {
            fprintf(f, "%s: CKR_DEVICE_ERROR\n", function);
            fclose(f);
        }
    }
    return 1;
}

/* Ends the real module's signing operation, as a failed C_Sign would, and discards the result. */
static void finish_real_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len)
{
    CK_ULONG len = 0;
    if (real->C_Sign(session, data, data_len, NULL, &len) != CKR_OK)
        return;
    CK_BYTE_PTR scrap = malloc(len ? len : 1);
    if (scrap == NULL)
        return;
    real->C_Sign(session, data, data_len, scrap, &len);
    free(scrap);
}

/* The calls counted, and how many times each was made. */
#define COUNTED(X)                                                                              \
    X(C_GetSlotList, (CK_BBOOL a, CK_SLOT_ID_PTR b, CK_ULONG_PTR c), (a, b, c))                 \
    X(C_GetSlotInfo, (CK_SLOT_ID a, CK_SLOT_INFO_PTR b), (a, b))                                \
    X(C_GetTokenInfo, (CK_SLOT_ID a, CK_TOKEN_INFO_PTR b), (a, b))                              \
    X(C_GetMechanismList, (CK_SLOT_ID a, CK_MECHANISM_TYPE_PTR b, CK_ULONG_PTR c), (a, b, c))   \
    X(C_GetMechanismInfo, (CK_SLOT_ID a, CK_MECHANISM_TYPE b, CK_MECHANISM_INFO_PTR c),         \
      (a, b, c))                                                                                \
    X(C_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d), (a, b, c, d)) \
    X(C_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c), (a, b, c))              \
    X(C_SetPIN,                                                                                 \
      (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d, CK_ULONG e),      \
      (a, b, c, d, e))                                                                          \
    X(C_OpenSession,                                                                            \
      (CK_SLOT_ID a, CK_FLAGS b, CK_VOID_PTR c, CK_NOTIFY d, CK_SESSION_HANDLE_PTR e),          \
      (a, b, c, d, e))                                                                          \
    X(C_CloseSession, (CK_SESSION_HANDLE a), (a))                                               \
    X(C_Login, (CK_SESSION_HANDLE a, CK_USER_TYPE b, CK_UTF8CHAR_PTR c, CK_ULONG d), (a, b, c, d)) \
    X(C_Logout, (CK_SESSION_HANDLE a), (a))                                                     \
    X(C_CreateObject,                                                                           \
      (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d), (a, b, c, d)) \
    X(C_DestroyObject, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), (a, b))                       \
    X(C_GetAttributeValue,                                                                      \
      (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d), (a, b, c, d))  \
    X(C_SetAttributeValue,                                                                      \
      (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d), (a, b, c, d))  \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c), (a, b, c))      \
    X(C_FindObjects,                                                                            \
      (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE_PTR b, CK_ULONG c, CK_ULONG_PTR d), (a, b, c, d))  \
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE a), (a))                                           \
    X(C_SignInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), (a, b, c))     \
    X(C_GenerateKeyPair,                                                                        \
      (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d,                 \
       CK_ATTRIBUTE_PTR e, CK_ULONG f, CK_OBJECT_HANDLE_PTR g, CK_OBJECT_HANDLE_PTR h),         \
      (a, b, c, d, e, f, g, h))

enum { COUNTED_ENUM_DUMMY = -1,
#define AS_ENUM(name, params, args) N_##name,
       COUNTED(AS_ENUM) N_C_Sign, N_COUNTED };

static const char *const counted_names[N_COUNTED] = {
#define AS_NAME(name, params, args) #name,
    COUNTED(AS_NAME) "C_Sign",
};

static unsigned long counts[N_COUNTED];

/* Appends the counts since the last write to FAULTY_PKCS11_COUNTS, when set. */
static void write_counts(void)
{
    const char *path = getenv("FAULTY_PKCS11_COUNTS");
    if (path == NULL)
        return;
    FILE *f = fopen(path, "a");
    if (f == NULL)
        return;
    for (int i = 0; i < N_COUNTED; i++) {
        unsigned long n = __atomic_exchange_n(&counts[i], 0, __ATOMIC_RELAXED);
        if (n != 0)
            fprintf(f, "%s %lu\n", counted_names[i], n);
    }
    fclose(f);
}

#define AS_WRAPPER(name, params, args)                                                          \
    static CK_RV counted_##name params                                                          \
    {                                                                                           \
        __atomic_add_fetch(&counts[N_##name], 1, __ATOMIC_RELAXED);                            \
        return real->name args;                                                                 \
    }
COUNTED(AS_WRAPPER)

static CK_RV counted_finalize(CK_VOID_PTR reserved)
{
    write_counts();
    return real->C_Finalize(reserved);
}

static CK_RV faulty_sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                         CK_BYTE_PTR signature, CK_ULONG_PTR signature_len)
{
    __atomic_add_fetch(&counts[N_C_Sign], 1, __ATOMIC_RELAXED);
    if (failing("C_Sign")) {
        finish_real_sign(session, data, data_len);
        return CKR_DEVICE_ERROR;
    }
    CK_RV rv = real->C_Sign(session, data, data_len, signature, signature_len);
    if (rv == CKR_OK && signature != NULL)
        made++;
    return rv;
}

static CK_RV faulty_sign_update(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len)
{
    if (failing("C_SignUpdate"))
        return CKR_DEVICE_ERROR;
    return real->C_SignUpdate(session, part, part_len);
}

static CK_RV faulty_sign_final(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                               CK_ULONG_PTR signature_len)
{
    if (failing("C_SignFinal")) {
        CK_ULONG len = 0;
        if (real->C_SignFinal(session, NULL, &len) == CKR_OK) {
            CK_BYTE_PTR scrap = malloc(len ? len : 1);
            if (scrap != NULL) {
                real->C_SignFinal(session, scrap, &len);
                free(scrap);
            }
        }
        return CKR_DEVICE_ERROR;
    }
    CK_RV rv = real->C_SignFinal(session, signature, signature_len);
    if (rv == CKR_OK && signature != NULL)
        made++;
    return rv;
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    if (list == NULL)
        return CKR_ARGUMENTS_BAD;
    if (real == NULL) {
        const char *path = getenv("FAULTY_PKCS11_REAL");
        if (path == NULL) {
            fprintf(stderr, "faulty_pkcs11: FAULTY_PKCS11_REAL is not set\n");
            return CKR_GENERAL_ERROR;
        }
        void *module = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (module == NULL) {
            fprintf(stderr, "faulty_pkcs11: %s\n", dlerror());
            return CKR_GENERAL_ERROR;
        }
        CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(module, "C_GetFunctionList");
        CK_FUNCTION_LIST_PTR found = NULL;
        if (get == NULL || get(&found) != CKR_OK || found == NULL) {
            fprintf(stderr, "faulty_pkcs11: %s has no usable C_GetFunctionList\n", path);
            return CKR_GENERAL_ERROR;
        }
        real_list_copy = *found;
        real = &real_list_copy;
        faulty = real_list_copy;
        faulty.C_GetFunctionList = C_GetFunctionList;
        faulty.C_Sign = faulty_sign;
        faulty.C_SignUpdate = faulty_sign_update;
        faulty.C_SignFinal = faulty_sign_final;
        if (getenv("FAULTY_PKCS11_COUNTS") != NULL) {
#define INSTALL(name, params, args) faulty.name = counted_##name;
            COUNTED(INSTALL)
            faulty.C_Finalize = counted_finalize;
            atexit(write_counts);
        }
    }
    *list = &faulty;
    return CKR_OK;
}
